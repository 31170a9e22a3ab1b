"""`spdc report [RUN_DIR...]`: a markdown report with PNG plots of one run, or a comparison."""

from __future__ import annotations

from pathlib import Path

import click

from spdc.cli.common import handle_errors, json_option
from spdc.core.console import print_json, stderr


@click.command("report")
@click.argument("run_dirs", metavar="[RUN_DIR...]", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "output", type=click.Path(path_type=Path),
              help="Markdown file (default RUN_DIR/report.md for one run, report.md for several).")
@json_option
@handle_errors
def report_command(run_dirs: tuple[Path, ...], output: Path | None, json_output: bool) -> None:
    """Write a markdown report: summary table, train vs dev metric, loss parts, grafting probability and
    sparsity over steps, per-layer sparsity or kept units. With several runs: a side-by-side comparison. With
    none: the run the last `spdc compress` finished in this directory."""
    import spdc

    result = spdc.report(run_dirs, out=output)
    if json_output:
        print_json(result.to_json())
    else:
        stderr.print(f"wrote {result.report} with {len(result.plots)} plots")
