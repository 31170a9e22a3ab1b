"""What every command shares: the --json flag, --set overrides, and turning SpdcError into an exit code."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.markup import escape
from rich.table import Table

from spdc.core.console import print_json, stderr
from spdc.core.errors import SpdcError

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option("--json", "json_output", is_flag=True, help="Print one JSON document on stdout.")
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Override a recipe value, typed by the schema (repeatable), e.g. --set teacher.finetune.epochs=1.",
)


def run_directory_options(command: F) -> F:
    """--out, --resume and --overwrite, shared by every command that writes a run directory."""
    for option in reversed([
        click.option("--out", "output_dir", type=click.Path(path_type=Path),
                     help="Run directory (default runs/<name>)."),
        click.option("--resume", is_flag=True, help="Continue the run from its last checkpoint."),
        click.option("--overwrite", is_flag=True, help="Replace an existing run directory."),
    ]):
        command = option(command)
    return command


def quiet_libraries() -> None:
    """Silence transformers' load reports, tqdm bars and onnxruntime tooling warnings; spdc prints its own
    progress and notes."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger().setLevel(logging.ERROR)
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    disable_progress_bars()


def handle_errors(command: F) -> F:
    """Expected failures print a one-paragraph message (JSON under --json) and exit with their own code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SpdcError as exc:
            if kwargs.get("json_output"):
                print_json({"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)}})
            else:
                stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise SystemExit(exc.exit_code) from None
        except KeyboardInterrupt:
            if "resume" in kwargs:
                stderr.print("[bold yellow]interrupted[/]: continue the run from its last checkpoint with --resume")
            else:
                stderr.print("[bold yellow]interrupted[/]: nothing half-written was left; run the command again")
            raise SystemExit(130) from None

    return wrapper  # type: ignore[return-value]


def metrics_table(title: str, metrics: dict[str, float]) -> Table:
    """A two-column table of metric values; wide enough that the title stays on one line."""
    table = Table(title=title, min_width=min(len(title), 100))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}")
    return table
