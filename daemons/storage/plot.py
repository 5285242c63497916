"""Each measured channel against the swept parameters, one panel per channel, as a PNG.

The first parameter is the x axis; every distinct combination of the other parameters is its
own series, so a grid sweep shows a family of curves. Error bars are the per-point standard
deviation. Drawn on matplotlib's Agg canvas directly (no pyplot, no display, no global state),
so it is safe in a daemon and in tests.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .layout import POINT_INDEX, stat_column
from .reader import Summary


def _label(name: str, unit: str) -> str:
    return f"{name} [{unit}]" if unit and unit != "dimensionless" else name


def _setting(name: str, value: float, unit: str) -> str:
    shown = unit if unit != "dimensionless" else ""
    return f"{name}={value:g} {shown}".rstrip()


def _series(summary: Summary) -> list[tuple[str, np.ndarray]]:
    """(legend label, row indices) per combination of the parameters after the first.

    Only completed points are drawn: a failed point's statistics cover part of its samples.
    """
    rows = summary.completed()
    others = summary.parameters[1:]
    if not others:
        return [("", rows)]
    keys = np.stack([summary.columns[name][rows] for name in others], axis=1)
    series = []
    for combo in np.unique(keys, axis=0):
        same = np.all((keys == combo) | (np.isnan(keys) & np.isnan(combo)), axis=1)
        label = ", ".join(
            _setting(name, value, summary.parameter_units.get(name, ""))
            for name, value in zip(others, combo, strict=True)
        )
        series.append((label, rows[same]))
    return series


def plot_summary(summary: Summary, out: Path, *, title: str = "") -> int:
    """Draw the panels into `out` (PNG); returns how many panels were drawn."""
    done = summary.completed()
    measured = [
        c for c in summary.channels if summary.columns[stat_column(c.name, "n")][done].sum() > 0
    ]
    axis = summary.parameters[0] if summary.parameters else POINT_INDEX
    x = summary.columns[axis]
    panels = max(len(measured), 1)
    cols = 1 if panels == 1 else 2
    lines = math.ceil(panels / cols)
    figure = Figure(figsize=(6.4 * cols, 3.6 * lines), layout="constrained")
    FigureCanvasAgg(figure)
    series = _series(summary)
    for number, channel in enumerate(measured, start=1):
        ax = figure.add_subplot(lines, cols, number)
        mean = summary.columns[stat_column(channel.name, "mean")]
        std = summary.columns[stat_column(channel.name, "std")]
        for label, rows in series:
            order = rows[np.argsort(x[rows], kind="stable")]
            ax.errorbar(
                x[order],
                mean[order],
                yerr=std[order],
                marker="o",
                markersize=3,
                capsize=2,
                linewidth=1,
                label=label or None,
            )
        ax.set_xlabel(_label(axis, summary.parameter_units.get(axis, "")))
        ax.set_ylabel(_label(channel.name, channel.unit))
        ax.grid(visible=True, alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize="small")
    if not measured:
        ax = figure.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no measured points yet", ha="center", va="center")
        ax.set_axis_off()
    if title:
        figure.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", dpi=100)
    return len(measured)
