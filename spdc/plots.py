"""PNG plots of a run, drawn with matplotlib's non-interactive backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_train_dev(records: list[dict[str, Any]], metric: str, path: Path, *, title: str) -> Path:
    """Train (eval mode) vs dev metric over global steps: the overfitting gap SPD is meant to narrow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [record for record in records if record["kind"] == "eval"]
    steps = [record["step"] for record in evals]
    figure, axis = plt.subplots(figsize=(7, 4), dpi=120)
    axis.plot(steps, [record["dev"][metric] for record in evals], marker="o", label=f"dev {metric}")
    if evals and "train" in evals[0]:
        axis.plot(steps, [record["train"][metric] for record in evals], marker="s", label=f"train {metric} (eval mode)")
    stage_ends: dict[str, int] = {}  # last step of each stage, in order: the boundaries between stages
    for record in records:
        stage_ends[record.get("stage", "")] = max(stage_ends.get(record.get("stage", ""), 0), record["step"])
    for (name, _), end in zip(list(stage_ends.items())[1:], list(stage_ends.values())[:-1], strict=True):
        axis.axvline(end, color="grey", linestyle=":", linewidth=1)
        axis.annotate(f" {name}", (end, axis.get_ylim()[0]), fontsize=8, color="grey")
    axis.set_xlabel("step")
    axis.set_ylabel(metric)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp)
    plt.close(figure)
    tmp.replace(path)
    return path
