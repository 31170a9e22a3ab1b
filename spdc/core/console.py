"""Terminal output: rich tables and progress bars on stderr, so stdout stays clean for `--json` documents."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from spdc.core.records import finite

stderr = Console(stderr=True, soft_wrap=True)


class RateColumn(ProgressColumn):
    """Steps (or batches) per second, from rich's own speed estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} it/s" if speed else "-- it/s", style="progress.data.speed")


def progress_bar() -> Progress:
    """A progress bar whose tasks may carry a `status` field (loss, learning rate, ...)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=stderr,
    )


_silenced = False


def silence() -> None:
    """Print nothing from this process (the non-zero ranks of a torchrun job: rank 0 speaks for the run)."""
    global _silenced
    _silenced = True
    stderr.quiet = True


def print_json(document: Any) -> None:
    """Write exactly one JSON document to stdout."""
    if _silenced:
        return
    sys.stdout.write(json.dumps(finite(document), indent=2, sort_keys=False, default=str, allow_nan=False) + "\n")
    sys.stdout.flush()
