"""Entry point of the `spdc` console script."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from spdc.cli.bench_cmd import bench_command
from spdc.cli.common import fail, install_signal_handlers
from spdc.cli.compress_cmd import compress_command
from spdc.cli.eval_cmd import eval_command
from spdc.cli.export_cmd import export_command
from spdc.cli.finetune_cmd import finetune_command
from spdc.cli.fold_cmd import fold_command
from spdc.cli.predict_cmd import predict_command
from spdc.cli.recipe_cmd import recipe_group
from spdc.cli.report_cmd import report_command
from spdc.cli.validate_cmd import validate_command
from spdc.core.console import stderr
from spdc.core.version import VERSION


class SpdcGroup(click.Group):
    """The command group: SIGTERM handled like SIGINT, and click's own usage errors printed as one JSON document
    when the command line asks for --json (a pipeline reads stdout, and would otherwise read nothing)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        install_signal_handlers()
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        try:
            return super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            if "--json" not in argv:
                exc.show()
                raise SystemExit(exc.exit_code) from None
            fail(type(exc).__name__, exc.format_message(), exc.exit_code, json_output=True)
        except click.exceptions.Abort:
            stderr.print("[bold yellow]aborted[/]")
            raise SystemExit(1) from None


@click.group(cls=SpdcGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(VERSION, prog_name="spdc")
def cli() -> None:
    """spdc: compress fine-tuned BERT-class classifiers with Sparse Progressive Distillation.

    Exit codes: 0 ok, 1 other error, 2 bad recipe or usage, 3 data error, 4 checkpoint error,
    5 model load error, 6 artifact error, 7 parity failed, 8 output refused, not writable or in use,
    9 training diverged (loss NaN or infinite), 10 another torchrun rank stopped, 130 interrupted (SIGINT or
    SIGTERM).
    """


cli.add_command(recipe_group)
cli.add_command(finetune_command)
cli.add_command(eval_command)
cli.add_command(compress_command)
cli.add_command(fold_command)
cli.add_command(export_command)
cli.add_command(validate_command)
cli.add_command(bench_command)
cli.add_command(predict_command)
cli.add_command(report_command)
