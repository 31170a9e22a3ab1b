"""The latency plot of a bench document: median latency vs batch size, one panel per sequence length."""

from __future__ import annotations

from pathlib import Path

from spdc.benchmark.document import BenchDocument
from spdc.core.plots import Panel, Series, plot_panels

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # overlapping lines stay distinguishable


def plot_latency(document: BenchDocument, path: Path) -> Path:
    """Median latency vs batch size, one panel per sequence length, one line per model."""
    panels = []
    for seq_len in document.settings.seq_lens:
        panel = Panel(title=f"sequence length {seq_len}", ylabel="median latency (ms, log scale)",
                      xlabel="batch size", log2_x=True, log_y=True)
        for model in document.models:
            cells = [r for r in document.results if r.model == model.index and r.seq_len == seq_len]
            panel.series.append(Series(
                f"#{model.index} {model.label} ({model.engine} {model.precision})",
                [c.batch for c in cells], [c.latency_ms["median"] for c in cells],
                style="--" if model.engine == "torch" else "-", marker=MARKERS[model.index % len(MARKERS)]))
        panels.append(panel)
    settings = document.settings
    return plot_panels(panels, path, title=f"spdc bench: {settings.provider}, "
                                           f"{settings.threads or 'default'} threads, {settings.inputs} inputs, "
                                           f"{document.machine.cpu_model or document.machine.processor}",
                       legend_below=True)
