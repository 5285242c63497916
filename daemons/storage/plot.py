"""Each measured channel against the swept parameters, one panel per channel, as a PNG.

The first parameter is the x axis. A grid (every setting of the other parameters measured at
several x values) is a family of curves, one per setting, with the per-point standard deviation
as error bars. Any other design (Latin hypercube, random, list, zip) is one scatter, coloured by
the second parameter with a colour bar where there is one: one legend entry per point would hide
the data (ADR 0044). Units are shown as a person writes them (°C, µΩ·cm); a run that did not
complete says so in the title. Drawn on matplotlib's Agg canvas directly (no pyplot, no display,
no global state), so it is safe in a daemon and in tests.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from mdfd.recipes.units import UnitError, parse_unit

from .layout import POINT_INDEX, ChannelSpec, stat_column
from .reader import Summary

MAX_CURVES = 8
"""More settings of the other parameters than this, and a family of curves is a scatter."""
TITLE_CHARS_PER_INCH = 9  # ~9.4 px a character at the default title size and 100 dpi
UNIT_OVERRIDES = {
    "microohm*cm": "µΩ·cm",  # pint sorts factors alphabetically: cm·µΩ
    "degC/min": "°C/min",  # pint marks an offset unit in a ratio as a delta: Δ°C/min
    "L/min": "L/min",  # pint writes litres as l
    "mL/min": "mL/min",
    "L": "L",
    "mL": "mL",
}


def pretty_unit(unit: str) -> str:
    """A unit as a person writes it: degC -> °C, microohm*cm -> µΩ·cm, percent -> %."""
    text = unit.replace(" ", "")
    if text in UNIT_OVERRIDES:
        return UNIT_OVERRIDES[text]
    try:
        return format(parse_unit(text), "~P")
    except UnitError:
        return unit


def _label(name: str, unit: str) -> str:
    shown = pretty_unit(unit)
    return f"{name} [{shown}]" if shown else name


def _setting(name: str, value: float, unit: str) -> str:
    return f"{name}={value:g} {pretty_unit(unit)}".rstrip()


def _families(summary: Summary, rows: np.ndarray) -> list[tuple[str, np.ndarray]] | None:
    """(legend label, row indices) per setting of the parameters after the first; None when
    the design is not a grid (a setting with a single point, or too many settings)."""
    others = summary.parameters[1:]
    if not others:
        return [("", rows)]
    keys = np.stack([summary.columns[name][rows] for name in others], axis=1)
    families = []
    for combo in np.unique(keys, axis=0):
        same = np.all((keys == combo) | (np.isnan(keys) & np.isnan(combo)), axis=1)
        label = ", ".join(
            _setting(name, value, summary.parameter_units.get(name, ""))
            for name, value in zip(others, combo, strict=True)
        )
        families.append((label, rows[same]))
    if len(families) > MAX_CURVES or any(len(member) < 2 for _, member in families):
        return None
    return families


def _curves(ax: Axes, x: np.ndarray, mean: np.ndarray, std: np.ndarray, families: list) -> None:
    for label, rows in families:
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
    if len(families) > 1:
        ax.legend(fontsize="small")


def _scatter(
    ax: Axes, figure: Figure, summary: Summary, x: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> None:
    rows = summary.completed()
    ax.errorbar(x[rows], mean[rows], yerr=std[rows], fmt="none", ecolor="0.75", linewidth=0.8)
    if len(summary.parameters) < 2:
        ax.scatter(x[rows], mean[rows], s=18)
        return
    hue = summary.parameters[1]
    dots = ax.scatter(x[rows], mean[rows], c=summary.columns[hue][rows], cmap="viridis", s=18)
    bar = figure.colorbar(dots, ax=ax)
    bar.set_label(_label(hue, summary.parameter_units.get(hue, "")))
    bar.formatter = ScalarFormatter(useOffset=False)


def _no_offsets(ax: Axes) -> None:
    """Tick labels are values, never `+1.18e3` offsets a reader has to add in their head."""
    ax.xaxis.set_major_formatter(ScalarFormatter(useOffset=False))
    ax.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))


def full_title(summary: Summary, title: str) -> str:
    """The caller's title, marked partial when the run did not complete."""
    status = str(summary.metadata.get("status", "completed"))
    if status == "completed":
        return title
    done = len(summary.completed())
    state = "still running or interrupted" if status == "running" else status
    mark = f"partial: run {state}, {done} of {summary.rows} points completed"
    return f"{title} ({mark})" if title else mark


def plot_summary(summary: Summary, out: Path, *, title: str = "") -> int:
    """Draw the panels into `out` (PNG); returns how many panels were drawn."""
    figure, panels = draw_summary(summary, title=title)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", dpi=100)
    return panels


def draw_summary(summary: Summary, *, title: str = "") -> tuple[Figure, int]:
    """The figure and how many channel panels it has (none when nothing was measured yet)."""
    done = summary.completed()
    measured: list[ChannelSpec] = [
        c for c in summary.channels if summary.columns[stat_column(c.name, "n")][done].sum() > 0
    ]
    axis = summary.parameters[0] if summary.parameters else POINT_INDEX
    x = summary.columns[axis]
    panels = max(len(measured), 1)
    cols = 1 if panels == 1 else 2
    lines = math.ceil(panels / cols)
    width = 6.4 * cols
    figure = Figure(figsize=(width, 3.6 * lines), layout="constrained")
    FigureCanvasAgg(figure)
    families = _families(summary, done)
    for number, channel in enumerate(measured, start=1):
        ax = figure.add_subplot(lines, cols, number)
        mean = summary.columns[stat_column(channel.name, "mean")]
        std = summary.columns[stat_column(channel.name, "std")]
        if families is None:
            _scatter(ax, figure, summary, x, mean, std)
        else:
            _curves(ax, x, mean, std, families)
        ax.set_xlabel(_label(axis, summary.parameter_units.get(axis, "")))
        ax.set_ylabel(_label(channel.name, channel.unit))
        ax.grid(visible=True, alpha=0.3)
        _no_offsets(ax)
    if not measured:
        ax = figure.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no measured points yet", ha="center", va="center")
        ax.set_axis_off()
    shown = full_title(summary, title)
    if shown:
        wrapped = textwrap.wrap(
            shown, int(width * TITLE_CHARS_PER_INCH), break_on_hyphens=False
        )  # a run id stays whole, to be copied
        figure.suptitle("\n".join(wrapped))
    return figure, len(measured)
