"""`spdc report`: a markdown report with PNG plots for one run, or a side-by-side comparison of several.

One run: summary table, train vs dev metric over steps (the overfitting gap), loss parts, grafting probability
and sparsity over steps, and per-layer sparsity or kept heads / FFN neurons. Several runs: one summary table and
overlaid dev-metric and train-dev-gap curves (e.g. spd vs kd vs magnitude on one task). Fine-tuning and
compression runs are read through the same typed summary (`RunSummary.best_dev`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spdc.core.atomic import atomic_write_text, ensure_dir
from spdc.core.cpu import ISA_FLAGS, feature_line
from spdc.core.errors import ArtifactError, CheckpointError
from spdc.core.outputs import check_output, check_output_file, mark_output, output_kind, output_lock
from spdc.core.plots import Panel, Series, plot_grouped_bars, plot_panels
from spdc.core.records import Result
from spdc.runs.directory import RunDirectory
from spdc.runs.records import (
    CompressSummary,
    EvalRecord,
    FinetuneSummary,
    TrainRecord,
    read_summary,
)

SCHEDULE_FIELDS = ("p", "sparsity", "head_sparsity", "neuron_sparsity")
REPORT_SIGNATURE = b"# spdc report:"


class ReportResult(Result):
    """`spdc report`: the markdown file, its plots and the runs it covers."""

    report: str
    plots: list[str]
    runs: list[str]


def stage_boundaries(records: Sequence[TrainRecord | EvalRecord]) -> list[tuple[str, int]]:
    """(name of the next stage, last step of the previous one) for every stage change, in order."""
    stage_ends: dict[str, int] = {}
    for record in records:
        stage_ends[record.stage] = max(stage_ends.get(record.stage, 0), record.step)
    return [(name, end) for (name, _), end in zip(list(stage_ends.items())[1:], list(stage_ends.values())[:-1],
                                                  strict=True)]


def plot_train_dev(records: Sequence[TrainRecord | EvalRecord], metric: str, path: Path, *, title: str) -> Path:
    """Train (eval mode) vs dev metric over global steps: the overfitting gap SPD is meant to narrow."""
    evals = [record for record in records if isinstance(record, EvalRecord)]
    steps = [record.step for record in evals]
    panel = Panel(title=title, ylabel=metric, boundaries=stage_boundaries(records),
                  series=[Series(f"dev {metric}", steps, [record.dev[metric] for record in evals])])
    trained = [record for record in evals if record.train]
    if trained:
        panel.series.append(Series(f"train {metric} (eval mode)", [record.step for record in trained],
                                   [record.train[metric] for record in trained if record.train], "--"))
    return plot_panels([panel], path)


@dataclass
class RunRecord:
    """What a report needs from a run directory: its typed summary, its metric log and a display name."""

    path: Path
    name: str
    summary: FinetuneSummary | CompressSummary
    records: list[TrainRecord | EvalRecord]

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        run = RunDirectory(path)
        if not run.metrics_file.is_file():
            raise ArtifactError(f"{path} is not a finished run directory (needs summary.json and metrics.jsonl)")
        summary = read_summary(path)
        try:
            records = run.read_metrics()
        except CheckpointError as exc:
            raise ArtifactError(f"cannot read the run files in {path}: {exc}") from None
        return cls(path=path, name=path.name, summary=summary, records=records)

    @property
    def main_metric(self) -> str:
        return self.summary.main_metric

    def model_config(self) -> dict[str, Any]:
        config = RunDirectory(self.path).model_dir / "config.json"
        return dict(json.loads(config.read_text(encoding="utf-8"))) if config.is_file() else {}

    @property
    def evals(self) -> list[EvalRecord]:
        return [record for record in self.records if isinstance(record, EvalRecord)]

    @property
    def trains(self) -> list[TrainRecord]:
        return [record for record in self.records if isinstance(record, TrainRecord)]

    def dev_metric(self) -> float | None:
        return self.summary.best_dev().get(self.main_metric)

    def best_gap(self) -> tuple[float, float] | None:
        """(train, dev) main metric at the best evaluation step."""
        best = self.summary.best_step
        record = next((r for r in self.evals if r.step == best and r.train), None)
        if record is None or record.train is None:
            return None
        return record.train[self.main_metric], record.dev[self.main_metric]


def _fmt(value: float | None, scale: float = 100.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def summary_rows(runs: list[RunRecord]) -> list[str]:
    """Markdown summary table, one row per run."""
    lines = [("| run | task | method | majority baseline | teacher | model (dev) | train (eval mode) | train - dev "
              "| retained | sparsity | FLOPs cut | steps | train min |"),
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        summary, main = run.summary, run.main_metric
        gap = run.best_gap()
        if isinstance(summary, CompressSummary):
            method, teacher, retained = summary.method, summary.teacher_dev.get(main), summary.retained
            sparsity = (summary.structure.sparsity or {}).get("overall")
            flops = (summary.structure.flops or {}).get("reduction")
        else:
            method, teacher, retained, sparsity, flops = "finetune", None, None, None, None
        lines.append(
            f"| {run.name} | {summary.task} | {method} | {_fmt((summary.baseline or {}).get(main))} "
            f"| {_fmt(teacher)} | {_fmt(run.dev_metric())} "
            f"| {_fmt(gap[0] if gap else None)} | {_fmt(gap[0] - gap[1] if gap else None)} "
            f"| {_fmt(retained, 100, 1)} | {_fmt(sparsity, 100, 1)} | {_fmt(flops, 100, 0)} | {summary.steps} "
            f"| {summary.train_seconds / 60:.1f} |"
        )
    return lines


def _series(records: Sequence[TrainRecord], key: str, style: str = "-") -> Series:
    steps, values = [], []
    for record in records:
        value = getattr(record, key, None)
        if value is None:
            value = record.loss_parts().get(key)
        if value is not None:
            steps.append(record.step)
            values.append(float(value))
    return Series(key.removeprefix("loss_"), steps, values, style)


def _run_plots(run: RunRecord, plots_dir: Path) -> list[tuple[str, Path]]:
    main, boundaries = run.main_metric, stage_boundaries(run.records)
    plots: list[tuple[str, Path]] = [("Train vs dev metric (the overfitting gap)", plot_train_dev(
        run.records, main, plots_dir / "train_dev.png", title=f"{main}: train (eval mode) vs dev"))]
    trains = run.trains
    loss_keys = sorted({key for record in trains for key in record.loss_parts()})
    loss_panel = Panel("training loss parts", "loss", boundaries=boundaries,
                       series=[_series(trains, key) for key in ["loss", *loss_keys]])
    plots.append(("Loss parts", plot_panels([loss_panel], plots_dir / "losses.png")))
    keys = [key for key in SCHEDULE_FIELDS if any(getattr(record, key) is not None for record in trains)]
    schedule = Panel("grafting probability and sparsity", "value", boundaries=boundaries, series=[
        _series(trains, key, style) for key, style in zip(keys, ("-", "--", ":", "-."), strict=False)])
    # distinct styles keep equal curves (heads = neurons) visible
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
    summary = run.summary
    sparsity = summary.structure.sparsity if isinstance(summary, CompressSummary) else None
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


def environment_line(environment: dict[str, Any]) -> str:
    """A run's machine and versions in one line, so that a report's times and metrics name where they came from."""
    present = set(environment.get("cpu_features") or [])
    isa = feature_line({name: name in present for name in ISA_FLAGS.values()})
    return (f"{environment.get('cpu_model') or environment.get('processor', '?')} (ISA: {isa}), "
            f"{environment.get('device', '?')}, {environment.get('torch_threads', '?')} torch threads, precision "
            f"{environment.get('precision', 'fp32')}; spdc {environment.get('spdc', '?')}, torch "
            f"{environment.get('torch', '?')}, transformers {environment.get('transformers', '?')}")


def write_report(paths: list[Path], out: Path) -> ReportResult:
    """Write the markdown report and its plots (in `<out stem>-plots/` beside it)."""
    runs = [RunRecord.load(path) for path in paths]
    plots_dir = out.with_name(f"{out.stem}-plots")
    with output_lock(plots_dir, what="report plots folder"):
        check_output_file(out, signature=REPORT_SIGNATURE, what="report")
        plots_dir = check_output(plots_dir, "plots", replace=True, what="report plots folder")
        if not plots_dir.is_dir() or output_kind(plots_dir) is None:
            ensure_dir(plots_dir)
            mark_output(plots_dir, "plots")  # empty and recorded: each plot records itself as it is drawn
        return _write_report(runs, out, plots_dir)


def _write_report(runs: list[RunRecord], out: Path, plots_dir: Path) -> ReportResult:
    title = runs[0].name if len(runs) == 1 else " vs ".join(run.name for run in runs)
    lines = [f"{REPORT_SIGNATURE.decode()} {title}", "", *summary_rows(runs), ""]
    lines.append("Metrics in %, on the dev split; train is measured in eval mode on a training sample at the best "
                 "step; retained = student / teacher; the majority baseline predicts the dev split's most frequent "
                 "label (regression: its mean) for every row.")
    plots = _run_plots(runs[0], plots_dir) if len(runs) == 1 else _comparison_plots(runs, plots_dir)
    for caption, path in plots:
        lines += ["", f"## {caption}", "", f"![{caption}]({path.relative_to(out.parent).as_posix()})"]
    lines += ["", "Runs: " + ", ".join(f"`{run.path}`" for run in runs), "",
              f"Written {dt.datetime.now(dt.UTC).date().isoformat()}. Where the runs trained:", "",
              *sorted({f"- {environment_line(run.summary.environment)}" for run in runs}), ""]
    atomic_write_text(out, "\n".join(lines))
    return ReportResult(report=str(out), plots=[str(path) for _, path in plots], runs=[str(run.path) for run in runs])


def _comparison_plots(runs: list[RunRecord], plots_dir: Path) -> list[tuple[str, Path]]:
    main = runs[0].main_metric
    dev = Panel(f"dev {main}", main, series=[
        Series(run.name, [r.step for r in run.evals], [r.dev[main] for r in run.evals]) for run in runs])
    gap = Panel(f"train - dev {main} (eval mode)", "gap", series=[
        Series(run.name, [r.step for r in run.evals if r.train],
               [r.train[main] - r.dev[main] for r in run.evals if r.train]) for run in runs])
    return [("Dev metric and train-dev gap over steps", plot_panels([dev, gap], plots_dir / "compare.png"))]
