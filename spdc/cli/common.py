"""What every command shares: the --json flag, --set overrides, and turning SpdcError into an exit code."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.markup import escape
from rich.table import Table

from spdc.core.arguments import BOUNDS
from spdc.core.console import print_json, stderr
from spdc.core.errors import PeerLostError, SpdcError

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option("--json", "json_output", is_flag=True, help="Print one JSON document on stdout.")
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Override a recipe value, typed by the schema (repeatable), e.g. --set teacher.finetune.epochs=1.",
)


def option_type(name: str) -> click.ParamType:
    """The click type of an option whose bounds the API checks too (`spdc.core.arguments.BOUNDS`)."""
    bound = BOUNDS[name]
    if bound.choices:
        return click.Choice(list(bound.choices))
    if bound.integer:
        return click.IntRange(min=None if bound.minimum is None else int(bound.minimum),
                              max=None if bound.maximum is None else int(bound.maximum))
    return click.FloatRange(min=bound.minimum, max=bound.maximum)


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


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interruption so that it stops a command the way Ctrl-C does."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


def install_signal_handlers() -> None:
    """SIGTERM (a scheduler, `kill`, torchrun stopping its other ranks) ends like SIGINT: cleanly, saying how to
    go on."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


def fail(error_type: str, message: str, exit_code: int, *, json_output: bool) -> NoReturn:
    """Print one failure (one JSON document under --json) and exit with its code."""
    if json_output:
        print_json({"ok": False, "error": {"type": error_type, "message": message}})
    else:
        stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(exit_code)


def _lost_peer(error: BaseException) -> bool:
    """Whether `error` is what a rank of a torchrun job sees when another rank stops under it."""
    from spdc.runs.distributed import context

    if not context().enabled:
        return False
    distributed = sys.modules.get("torch.distributed")
    dist_error = getattr(distributed, "DistError", ()) if distributed else ()
    return isinstance(error, Terminated) or bool(dist_error and isinstance(error, dist_error)) or (
        isinstance(error, RuntimeError) and any(sign in str(error) for sign in ("gloo", "Connection closed")))


def handle_errors(command: F) -> F:
    """Expected failures print a one-paragraph message (JSON under --json) and exit with their own code; an
    interruption says how to go on; under torchrun, a rank whose peer stopped says so (every surviving rank,
    since the one that usually speaks may be the one that stopped); anything else is reported as a bug, still
    as one JSON document under --json."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        json_output = bool(kwargs.get("json_output"))
        try:
            return command(*args, **kwargs)
        except SpdcError as exc:
            fail(type(exc).__name__, str(exc), exc.exit_code, json_output=json_output)
        except BaseException as exc:
            if isinstance(exc, SystemExit | click.ClickException | click.exceptions.Exit | click.Abort):
                raise
            if _lost_peer(exc):
                from spdc.runs.distributed import context, peer_lost_message

                message = peer_lost_message(sys.argv[1:])
                if not context().is_main and sys.__stderr__ is not None:  # rank 0 may be the one that stopped
                    sys.__stderr__.write(f"error: {message}\n")
                fail(PeerLostError.__name__, message, PeerLostError.exit_code, json_output=json_output)
            if isinstance(exc, KeyboardInterrupt):
                what = "terminated" if isinstance(exc, Terminated) else "interrupted"
                if "resume" in kwargs:
                    stderr.print(f"[bold yellow]{what}[/]: continue the run from its last checkpoint with --resume")
                else:
                    stderr.print(f"[bold yellow]{what}[/]: nothing half-written was left; run the command again")
                raise SystemExit(130) from None
            if not isinstance(exc, Exception):
                raise
            stderr.print_exception()
            fail("InternalError", f"unexpected {type(exc).__name__}: {exc} (a bug in spdc: please report it with "
                 "the traceback above)", 1, json_output=json_output)

    return wrapper  # type: ignore[return-value]


def metrics_table(title: str, metrics: dict[str, float], baseline: dict[str, float] | None = None) -> Table:
    """A table of metric values, with the majority-class (regression: mean) baseline beside each when known, so a
    score at the baseline is seen for what it is; wide enough that the title stays on one line."""
    table = Table(title=title, min_width=min(len(title), 100))
    table.add_column("metric")
    table.add_column("value", justify="right")
    if baseline is not None:
        table.add_column("majority baseline", justify="right")
    for name, value in metrics.items():
        extra = [f"{baseline[name]:.4f}" if name in baseline else "-"] if baseline is not None else []
        table.add_row(name, f"{value:.4f}", *extra)
    return table
