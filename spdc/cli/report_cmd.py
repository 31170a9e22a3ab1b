"""`spdc report [RUN_DIR...]`: a markdown report with PNG plots of one run, or a comparison."""

from __future__ import annotations

from pathlib import Path

import click

from spdc.cli.common import handle_errors, json_option
from spdc.core.console import print_json, stderr


@click.command("report")
@click.argument("run_dirs", metavar="[RUN_DIR...]", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "output", type=click.Path(path_type=Path),
              help="Markdown file (default RUN_DIR/report.md for one run, report.md for several, frontier.md).")
@click.option("--frontier", "bench_file", type=click.Path(path_type=Path),
              help="A saved `spdc bench --json` document: write the accuracy-speed frontier of its artifacts "
                   "(restricted to RUN_DIRs when given) instead of a run report.")
@click.option("--cells", default="1x128,32x128", show_default=True,
              help="With --frontier: the batch x length cells, one panel each.")
@json_option
@handle_errors
def report_command(run_dirs: tuple[Path, ...], output: Path | None, bench_file: Path | None, cells: str,
                   json_output: bool) -> None:
    """Write a markdown report: summary table, train vs dev metric, loss parts, grafting probability and
    sparsity over steps, per-layer sparsity or kept units. With several runs: a side-by-side comparison. With
    none: the run the last `spdc compress` finished in this directory. With --frontier: dev metric vs measured
    speedup of every artifact in a bench document, Pareto front marked."""
    import spdc

    if bench_file is not None:
        try:
            pairs = [tuple(int(part) for part in cell.lower().split("x")) for cell in cells.split(",") if cell]
        except ValueError:
            raise click.BadParameter(f"expected BATCHxLENGTH[,...], got {cells!r}", param_hint="--cells") from None
        if not pairs or any(len(pair) != 2 for pair in pairs):
            raise click.BadParameter(f"expected BATCHxLENGTH[,...], got {cells!r}", param_hint="--cells")
        frontier = spdc.api.frontier(bench_file, run_dirs, out=output or Path("frontier.md"),
                                     cells=[(pair[0], pair[1]) for pair in pairs])
        if json_output:
            print_json(frontier.to_json())
        else:
            stderr.print(f"wrote {frontier.report} and {frontier.plot}")
        return
    result = spdc.report(run_dirs, out=output)
    if json_output:
        print_json(result.to_json())
    else:
        stderr.print(f"wrote {result.report} with {len(result.plots)} plots")
