"""The accuracy-speed frontier: dev metric vs measured speedup over the dense fp32 teacher, one point per
exported artifact (so per run x precision), from one `spdc bench` document.

The metric of a point is the deployed model's own: the ONNX metric its parity check measured on the dev split
(int8 artifacts therefore show what int8 costs). The speedup is the bench's, against the first model of the
document, which must be the dense fp32 teacher. A point is on the Pareto front when no other point is at least
as accurate and at least as fast, and strictly better in one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from spdc.benchmark.document import BenchDocument
from spdc.benchmark.machine import machine_header
from spdc.core.atomic import atomic_write_text
from spdc.core.errors import ArtifactError
from spdc.core.outputs import check_output_file
from spdc.core.plots import Panel, Series, plot_panels
from spdc.core.records import Result
from spdc.deploy.manifest import read_manifest

FRONTIER_SIGNATURE = b"# spdc frontier:"


@dataclass(frozen=True)
class FrontierPoint:
    label: str
    run: str  # the run (or model) directory the artifact was exported from
    precision: str
    metric: float
    speedup: float
    status: str  # the artifact's parity status


def pareto(points: Sequence[FrontierPoint]) -> list[FrontierPoint]:
    """The points no other point dominates (at least as good in metric and speedup, better in one)."""
    front = []
    for point in points:
        dominated = any(other.metric >= point.metric and other.speedup >= point.speedup
                        and (other.metric > point.metric or other.speedup > point.speedup) for other in points)
        if not dominated:
            front.append(point)
    return sorted(front, key=lambda point: point.speedup)


class FrontierResult(Result):
    report: str
    plot: str
    cells: list[tuple[int, int]]  # (batch, seq_len) of each panel
    points: dict[str, list[dict[str, object]]]  # "b<batch> s<seq>" -> points with their pareto flag


def frontier_points(document: BenchDocument, batch: int, seq_len: int,
                    runs: Sequence[Path] = ()) -> list[FrontierPoint]:
    """The document's artifacts as points at one (batch, length) cell; with `runs`, only the first model (the
    teacher baseline) and artifacts exported from those runs."""
    wanted = {run.resolve() for run in runs}
    points = []
    for model in document.models:
        cell = document.cell(model.index, batch, seq_len)
        if cell is None or model.engine != "ort":
            continue
        manifest = read_manifest(Path(model.path))
        if manifest.parity is None:
            raise ArtifactError(f"{model.path} has no parity result: its dev metric is unknown (spdc validate it)")
        source = Path(manifest.source.path)
        if wanted and model.index != 0 and source.resolve() not in wanted:
            continue
        metric = manifest.parity.metrics_onnx[manifest.parity.main_metric]
        points.append(FrontierPoint(label=model.label, run=str(source), precision=manifest.export.precision,
                                    metric=metric, speedup=cell.speedup, status=manifest.status))
    return points


def write_frontier(document: BenchDocument, out: Path, *, cells: Sequence[tuple[int, int]],
                   runs: Sequence[Path] = (), command: str | None = None) -> FrontierResult:
    """A markdown table per cell and one PNG (a panel per cell) of metric vs speedup, Pareto front marked;
    `command`, the line that regenerates the page, is printed on it."""
    check_output_file(out, signature=FRONTIER_SIGNATURE, what="frontier report")
    panels, lines, found = [], [f"{FRONTIER_SIGNATURE.decode()} dev metric vs speedup over the dense fp32 teacher",
                                ""], {}
    lines += [(f"Bench of {document.created[:10]}; the first model is the baseline. Metric: each artifact's own dev "
               "metric from its parity check. The bench's machine:"), "",
              *(f"- {line}" for line in machine_header(document.machine).splitlines()), "",
              *([f"Command: `{command}`", ""] if command else [])]
    for batch, seq_len in cells:
        points = frontier_points(document, batch, seq_len, runs)
        if not points:
            raise ArtifactError(f"the bench document has no results at batch {batch}, length {seq_len}")
        front = {(point.label, point.precision) for point in pareto(points)}
        lines += [f"## batch {batch}, sequence length {seq_len}", "",
                  "| artifact | precision | dev metric | speedup | parity | Pareto |", "|---|---|---:|---:|---|---|"]
        for point in sorted(points, key=lambda p: -p.speedup):
            on_front = (point.label, point.precision) in front
            lines.append(f"| {point.label} | {point.precision} | {point.metric * 100:.2f} | {point.speedup:.2f}x | "
                         f"{point.status} | {'yes' if on_front else ''} |")
        lines.append("")
        found[f"b{batch} s{seq_len}"] = [{**point.__dict__, "pareto": (point.label, point.precision) in front}
                                         for point in points]
        panel = Panel(f"batch {batch}, length {seq_len}", "dev metric (ONNX)", xlabel="speedup over dense fp32 (x)")
        for precision, marker in (("fp32", "o"), ("int8", "s")):
            chosen = [point for point in points if point.precision == precision]
            if chosen:
                panel.series.append(Series(precision, [p.speedup for p in chosen], [p.metric for p in chosen],
                                           style="", marker=marker, line=False))
        front_points = pareto(points)
        panel.series.append(Series("Pareto front", [p.speedup for p in front_points],
                                   [p.metric for p in front_points], style="--"))
        panels.append(panel)
    plot = plot_panels(panels, out.with_suffix(".png"), title="accuracy-speed frontier")
    lines += [f"![frontier]({plot.name})", ""]
    atomic_write_text(out, "\n".join(lines))
    return FrontierResult(report=str(out), plot=str(plot), cells=list(cells), points=found)
