"""Plotting helpers for benchmarks and ``evaluate.py``: robustness heatmaps and learning curves.

Both functions write a PNG and return its path. They draw on matplotlib's Agg canvas through the
object-oriented API (no pyplot), so they work on headless machines, never open a window and leave
the process-wide backend alone. Inputs are plain Python / numpy
numbers (convert tensors before calling; plotting is never in the hot path).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _new_figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure drawn by the Agg canvas directly: no pyplot, so no global backend or GUI state."""
    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _format_value(value: float, spread: float) -> str:
    """Short cell label: integers for returns in the hundreds, more digits for small values."""
    if not np.isfinite(value):
        return "nan"
    if spread >= 100 or abs(value) >= 1000:
        return f"{value:.0f}"
    if spread >= 1 or abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _tick_labels(values: Sequence[float]) -> list[str]:
    return [f"{v:g}" for v in values]


def heatmap(
    values: np.ndarray | Sequence[Sequence[float]],
    mass_scales: Sequence[float],
    friction_scales: Sequence[float],
    path: str | os.PathLike,
    title: str = "",
    *,
    xlabel: str = "friction scale",
    ylabel: str = "mass scale",
    colorbar_label: str = "return",
    cmap: str = "viridis",
) -> Path:
    """Write a heatmap of ``values[n_mass, n_friction]`` with every cell annotated.

    Rows are ``mass_scales`` (bottom to top, increasing), columns ``friction_scales`` (left to
    right). The grid mean is appended to the title, as in the QARL robustness figures. NaN cells
    (missing runs) are drawn blank and labelled "nan".
    """
    values = np.asarray(values, dtype=np.float64)
    n_mass, n_friction = len(mass_scales), len(friction_scales)
    if values.shape != (n_mass, n_friction):
        raise ValueError(f"values has shape {values.shape}, expected (n_mass, n_friction) = {(n_mass, n_friction)}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    # Cells shrink with the grid; keep the figure large enough for an 11 x 11 grid of labels.
    width = max(5.0, 0.75 * n_friction + 2.5)
    height = max(4.0, 0.55 * n_mass + 1.8)
    fig, ax = _new_figure(width, height)
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    image = ax.imshow(np.ma.masked_invalid(values), origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    colorbar = fig.colorbar(image, ax=ax)
    colorbar.set_label(colorbar_label)

    spread = vmax - vmin
    font_size = 9 if max(n_mass, n_friction) <= 7 else 8
    colormap = matplotlib.colormaps[cmap]
    for row in range(n_mass):
        for col in range(n_friction):
            value = values[row, col]
            # Dark text on bright cells, white on dark ones, judged by the cell colour's luminance.
            level = 0.5 if not np.isfinite(value) or spread == 0 else (value - vmin) / spread
            red, green, blue, _ = colormap(level)
            luminance = 0.299 * red + 0.587 * green + 0.114 * blue
            ax.text(
                col,
                row,
                _format_value(value, spread),
                ha="center",
                va="center",
                fontsize=font_size,
                # NaN cells are left blank (white), so their label must be dark too.
                color="black" if luminance > 0.5 or not np.isfinite(value) else "white",
            )

    ax.set_xticks(range(n_friction), _tick_labels(friction_scales))
    ax.set_yticks(range(n_mass), _tick_labels(mass_scales))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    mean_text = f"mean {np.nanmean(values):.4g}" if finite.size else "no finite values"
    ax.set_title(f"{title} ({mean_text})" if title else mean_text)
    fig.tight_layout()
    fig.savefig(path)
    return path


def curves(
    series: Mapping[str, Sequence[tuple[float, float, float]]],
    path: str | os.PathLike,
    title: str = "",
    xlabel: str = "environment steps",
    ylabel: str = "return",
    *,
    spread_label: str = "± std",
) -> Path:
    """Write line plots of ``series[label] = [(x, y_mean, y_spread), ...]`` with shaded spread.

    The band is ``y_mean ± y_spread`` (pass a std, a standard error or a CI half-width and say
    which in ``spread_label``, shown in the legend title). Points are sorted by x.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = _new_figure(7.0, 4.5)
    for label, points in series.items():
        if len(points) == 0:
            continue
        data = np.asarray(sorted(points, key=lambda point: point[0]), dtype=np.float64)
        x, mean, spread = data[:, 0], data[:, 1], data[:, 2]
        (line,) = ax.plot(x, mean, label=label, linewidth=1.8, marker="o" if len(x) <= 12 else None, markersize=3)
        ax.fill_between(x, mean - spread, mean + spread, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if any(len(points) for points in series.values()):
        ax.legend(title=spread_label, fontsize=9, title_fontsize=9)
    # Large step counts read better as 100k / 1M than as 1e6 offsets.
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useMathText=True)
    fig.tight_layout()
    fig.savefig(path)
    return path
