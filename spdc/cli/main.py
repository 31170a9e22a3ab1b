"""Entry point of the `spdc` console script."""

from __future__ import annotations

import click

from spdc.cli.bench_cmd import bench_command
from spdc.cli.compress_cmd import compress_command
from spdc.cli.eval_cmd import eval_command
from spdc.cli.export_cmd import export_command
from spdc.cli.finetune_cmd import finetune_command
from spdc.cli.fold_cmd import fold_command
from spdc.cli.recipe_cmd import recipe_group
from spdc.cli.report_cmd import report_command
from spdc.cli.validate_cmd import validate_command
from spdc.core.version import VERSION


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(VERSION, prog_name="spdc")
def cli() -> None:
    """spdc: compress fine-tuned BERT-class classifiers with Sparse Progressive Distillation.

    Exit codes: 0 ok, 1 other error, 2 bad recipe or usage, 3 data error, 4 checkpoint error,
    5 model load error, 6 artifact error, 7 parity failed, 8 output refused or not writable,
    130 interrupted.
    """


cli.add_command(recipe_group)
cli.add_command(finetune_command)
cli.add_command(eval_command)
cli.add_command(compress_command)
cli.add_command(fold_command)
cli.add_command(export_command)
cli.add_command(validate_command)
cli.add_command(bench_command)
cli.add_command(report_command)
