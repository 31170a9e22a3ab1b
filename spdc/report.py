"""`spdc report`: a markdown report with PNG plots for one run, or a side-by-side comparison of several.

One run: summary table, train vs dev metric over steps (the overfitting gap), loss parts, grafting probability
and sparsity over steps, and per-layer sparsity or kept heads / FFN neurons. Several runs: one summary table and
overlaid dev-metric and train-dev-gap curves (e.g. spd vs kd vs magnitude on one task).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spdc.atomic import atomic_write_text
from spdc.errors import ArtifactError
from spdc.plots import Panel, Series, plot_grouped_bars, plot_panels, stage_boundaries

LOSS_PREFIX = "loss_"
SPARSITY_KEYS = ("sparsity", "head_sparsity", "neuron_sparsity")


@dataclass
class RunRecord:
    """What a report needs from a run directory: its summary, its metric log and a display name."""

    path: Path
    name: str
    summary: dict[str, Any]
    records: list[dict[str, Any]]

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        summary_file, metrics_file = path / "summary.json", path / "metrics.jsonl"
        if not summary_file.is_file() or not metrics_file.is_file():
            raise ArtifactError(f"{path} is not a finished run directory (needs summary.json and metrics.jsonl)")
        try:
            summary = json.loads(summary_file.read_text(encoding="utf-8"))
            records = [json.loads(line) for line in metrics_file.read_text(encoding="utf-8").splitlines() if line]
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"cannot read the run files in {path}: {exc}") from None
        return cls(path=path, name=path.name, summary=summary, records=records)

    @property
    def main_metric(self) -> str:
        if self.summary.get("main_metric"):
            return self.summary["main_metric"]
        return next(iter(self.evals[0]["dev"])) if self.evals else "metric"

    def model_config(self) -> dict[str, Any]:
        config = self.path / "model" / "config.json"
        return json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}

    @property
    def evals(self) -> list[dict[str, Any]]:
        return [record for record in self.records if record["kind"] == "eval"]

    @property
    def trains(self) -> list[dict[str, Any]]:
        return [record for record in self.records if record["kind"] == "train"]

    def student_metric(self) -> float | None:
        dev = self.summary.get("student_dev") or self.summary.get("best_dev") or {}
        return dev.get(self.main_metric)

    def best_gap(self) -> tuple[float, float] | None:
        """(train, dev) main metric at the best evaluation step."""
        best = self.summary.get("best_step")
        record = next((r for r in self.evals if r["step"] == best and "train" in r), None)
        return (record["train"][self.main_metric], record["dev"][self.main_metric]) if record else None


def _fmt(value: float | None, scale: float = 100.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def summary_rows(runs: list[RunRecord]) -> list[str]:
    """Markdown summary table, one row per run."""
    lines = ["| run | task | method | teacher | student (dev) | train (eval mode) | train - dev | retained "
             "| sparsity | FLOPs cut | steps | train min |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        summary, main = run.summary, run.main_metric
        gap = run.best_gap()
        structure = summary.get("structure") or {}
        teacher = (summary.get("teacher_dev") or {}).get(main)
        lines.append(
            f"| {run.name} | {summary.get('task', '-')} | {summary.get('method', 'finetune')} | {_fmt(teacher)} "
            f"| {_fmt(run.student_metric())} | {_fmt(gap[0] if gap else None)} "
            f"| {_fmt(gap[0] - gap[1] if gap else None)} | {_fmt(summary.get('retained'), 100, 1)} "
            f"| {_fmt((structure.get('sparsity') or {}).get('overall'), 100, 1)} "
            f"| {_fmt((structure.get('flops') or {}).get('reduction'), 100, 0)} | {summary.get('steps', '-')} "
            f"| {summary.get('train_seconds', 0) / 60:.1f} |"
        )
    return lines


def _run_plots(run: RunRecord, plots_dir: Path) -> list[tuple[str, Path]]:
    main, boundaries = run.main_metric, stage_boundaries(run.records)
    evals, trains = run.evals, run.trains
    plots: list[tuple[str, Path]] = []
    steps = [r["step"] for r in evals]
    gap_panel = Panel(f"{main}: train (eval mode) vs dev", main, boundaries=boundaries,
                      series=[Series("dev", steps, [r["dev"][main] for r in evals])])
    if evals and "train" in evals[0]:
        gap_panel.series.append(Series("train (eval mode)", steps, [r["train"][main] for r in evals], "--"))
    plots.append(("Train vs dev metric (the overfitting gap)", plot_panels([gap_panel], plots_dir / "train_dev.png")))
    loss_keys = sorted({key for r in trains for key in r if key.startswith(LOSS_PREFIX)}) or ["loss"]
    loss_panel = Panel("training loss parts", "loss", boundaries=boundaries, series=[
        Series(key.removeprefix(LOSS_PREFIX), [r["step"] for r in trains if key in r],
               [r[key] for r in trains if key in r]) for key in ["loss", *[k for k in loss_keys if k != "loss"]]])
    plots.append(("Loss parts", plot_panels([loss_panel], plots_dir / "losses.png")))
    keys = [key for key in ("p", *SPARSITY_KEYS) if any(key in r for r in trains)]
    schedule = Panel("grafting probability and sparsity", "value", boundaries=boundaries, series=[
        Series(key, [r["step"] for r in trains if key in r], [r[key] for r in trains if key in r], style)
        for key, style in zip(keys, ("-", "--", ":", "-."))])  # styles keep equal curves (heads = neurons) visible
    if schedule.series:
        plots.append(("Grafting probability and sparsity", plot_panels([schedule], plots_dir / "schedule.png")))
    layers = _per_layer(run)
    if layers is not None:
        groups, bars, label, ymax = layers
        plots.append((label, plot_grouped_bars(groups, bars, plots_dir / "layers.png", title=label, ylabel=label,
                                               ymax=ymax)))
    return plots


def _per_layer(run: RunRecord) -> tuple[list[str], dict[str, list[float]], str, float | None] | None:
    """Kept heads / neurons per layer (structured) or sparsity per layer and matrix (unstructured)."""
    sparsity = (run.summary.get("structure") or {}).get("sparsity")
    if not sparsity:
        return None
    if "kept_heads" in sparsity:
        layers = sorted(sparsity["kept_heads"], key=int)
        config = run.model_config()
        head_total, neuron_total = config.get("num_attention_heads"), config.get("intermediate_size")
        if not head_total or not neuron_total:
            return None
        return ([f"layer {layer}" for layer in layers],
                {f"heads kept (of {head_total})": [sparsity["kept_heads"][layer] / head_total for layer in layers],
                 f"FFN neurons kept (of {neuron_total})": [sparsity["kept_neurons"][layer] / neuron_total
                                                           for layer in layers]},
                "fraction of units kept per layer", 1.05)
    per_matrix: dict[str, float] = sparsity["per_matrix"]
    layers = sorted({name.split(".", 1)[0] for name in per_matrix}, key=int)
    roles = list(dict.fromkeys(name.split(".", 1)[1] for name in per_matrix))
    return ([f"layer {layer}" for layer in layers],
            {role: [per_matrix[f"{layer}.{role}"] for layer in layers] for role in roles},
            "sparsity per layer and matrix", 1.05)


def write_report(paths: list[Path], out: Path) -> dict[str, Any]:
    """Write the markdown report and its plots (in `<out stem>-plots/` beside it); returns what was written."""
    runs = [RunRecord.load(path) for path in paths]
    plots_dir = out.with_name(f"{out.stem}-plots")
    plots_dir.mkdir(parents=True, exist_ok=True)
    title = runs[0].name if len(runs) == 1 else " vs ".join(run.name for run in runs)
    lines = [f"# spdc report: {title}", "", *summary_rows(runs), ""]
    lines.append("Metrics in %, on the dev split; train is measured in eval mode on a training sample at the best "
                 "step; retained = student / teacher.")
    written: list[Path] = []
    if len(runs) == 1:
        for caption, path in _run_plots(runs[0], plots_dir):
            lines += ["", f"## {caption}", "", f"![{caption}]({path.relative_to(out.parent).as_posix()})"]
            written.append(path)
    else:
        for caption, path in _comparison_plots(runs, plots_dir):
            lines += ["", f"## {caption}", "", f"![{caption}]({path.relative_to(out.parent).as_posix()})"]
            written.append(path)
    lines += ["", "Runs: " + ", ".join(f"`{run.path}`" for run in runs), ""]
    atomic_write_text(out, "\n".join(lines))
    return {"report": str(out), "plots": [str(path) for path in written], "runs": [str(run.path) for run in runs]}


def _comparison_plots(runs: list[RunRecord], plots_dir: Path) -> list[tuple[str, Path]]:
    main = runs[0].main_metric
    dev = Panel(f"dev {main}", main, series=[
        Series(run.name, [r["step"] for r in run.evals], [r["dev"][main] for r in run.evals]) for run in runs])
    gap = Panel(f"train - dev {main} (eval mode)", "gap", series=[
        Series(run.name, [r["step"] for r in run.evals if "train" in r],
               [r["train"][main] - r["dev"][main] for r in run.evals if "train" in r]) for run in runs])
    return [("Dev metric and train-dev gap over steps", plot_panels([dev, gap], plots_dir / "compare.png"))]
