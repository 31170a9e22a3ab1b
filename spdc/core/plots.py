"""PNG plot primitives (panels of lines, grouped bars) drawn with matplotlib's non-interactive backend (no display
needed). Every file is written to a temp name beside it and renamed, so a plot is either complete or absent."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spdc.core.atomic import atomic_write_bytes
from spdc.core.outputs import check_output_file

PNG_SOFTWARE = "spdc"
PNG_SIGNATURE = b"Software\x00spdc"  # the PNG text chunk matplotlib writes from `metadata`


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_number_formatter(leading: str = "123456789") -> Any:
    """Tick labels as plain numbers (10, 20, 50 rather than 10^1), only for ticks starting with `leading`."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: f"{value:g}" if f"{value:g}"[0] in leading else "")


def save_figure(figure: Any, path: Path, *, layout: bool = True) -> Path:
    plt = _pyplot()
    if layout:
        figure.tight_layout()
    check_output_file(path, signature=PNG_SIGNATURE, what="plot")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": PNG_SOFTWARE})
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return path


@dataclass
class Series:
    label: str
    x: Sequence[float]
    y: Sequence[float]
    style: str = "-"
    marker: str | None = None
    line: bool = True  # False: markers only (a scatter)


@dataclass
class Panel:
    title: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    xlabel: str = "step"
    boundaries: list[tuple[str, int]] = field(default_factory=list)
    log2_x: bool = False  # for batch sizes: log-2 axis, ticks at the data points
    log_y: bool = False


def plot_panels(panels: list[Panel], path: Path, *, title: str | None = None, legend_below: bool = False) -> Path:
    """Panels side by side, each with its lines, a legend and dotted stage boundaries. `legend_below`: one
    shared legend under the panels (for many series that share labels)."""
    plt = _pyplot()
    legend_rows = (max(len(panel.series) for panel in panels) + 1) // 2 if legend_below else 0
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4 + 0.25 * legend_rows), dpi=110,
                                squeeze=False)
    for axis, panel in zip(axes[0], panels, strict=True):
        for series in panel.series:
            marker = series.marker or ("o" if len(series.x) < 30 else None)
            if series.line:
                axis.plot(series.x, series.y, series.style or "-", marker=marker, markersize=5, label=series.label)
            else:
                axis.plot(series.x, series.y, linestyle="none", marker=marker, markersize=5, label=series.label)
        for name, end in panel.boundaries:
            axis.axvline(end, color="grey", linestyle=":", linewidth=1)
            axis.annotate(f" {name}", (end, 0.02), xycoords=("data", "axes fraction"), fontsize=8, color="grey")
        if panel.log2_x:
            ticks = sorted({x for series in panel.series for x in series.x})
            axis.set_xscale("log", base=2)
            axis.set_xticks(ticks, [f"{x:g}" for x in ticks])
        if panel.log_y:
            axis.set_yscale("log")
            axis.yaxis.set_major_formatter(_plain_number_formatter())
            axis.yaxis.set_minor_formatter(_plain_number_formatter("25"))
            axis.tick_params(axis="y", which="minor", labelsize=7)
        axis.set_title(panel.title, fontsize=10)
        axis.set_xlabel(panel.xlabel)
        axis.set_ylabel(panel.ylabel)
        axis.grid(alpha=0.3)
        if panel.series and not legend_below:
            axis.legend(fontsize=8)
    if title:
        figure.suptitle(title, fontsize=11)
    if legend_below and panels[0].series:
        handles, labels = axes[0][0].get_legend_handles_labels()
        figure.tight_layout(rect=(0, 0.06 * legend_rows / (1 + 0.06 * legend_rows) + 0.02, 1, 1))
        figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    return save_figure(figure, path, layout=not legend_below)


def plot_grouped_bars(groups: list[str], bars: dict[str, list[float]], path: Path, *, title: str, ylabel: str,
                      ymax: float | None = None) -> Path:
    """One group of bars per x label (e.g. a layer), one bar per key (e.g. a matrix role)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(max(6, 0.9 * len(groups) * max(1, len(bars)) / 2), 4), dpi=110)
    width = 0.8 / max(1, len(bars))
    for offset, (label, values) in enumerate(bars.items()):
        axis.bar([i + offset * width - 0.4 + width / 2 for i in range(len(groups))], values, width, label=label)
    axis.set_xticks(range(len(groups)), groups)
    axis.set_ylabel(ylabel)
    axis.set_title(title, fontsize=10)
    if ymax is not None:
        axis.set_ylim(0, ymax)
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize=8, ncol=min(3, len(bars)))
    return save_figure(figure, path)
