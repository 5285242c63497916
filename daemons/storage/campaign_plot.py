"""An adaptive run's campaign as a PNG: each objective against the trial number with the best
feasible value so far, and, for two or more objectives, the Pareto front of the first two.

Read from the run file's `/entry/campaign` group (see `campaign_group`), so a file copied away
from the MDF plots the same. Infeasible points (a broken outcome constraint) are hollow grey:
measured, kept, and visibly not candidates. Drawn on matplotlib's Agg canvas, like `plot`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .layout import CAMPAIGN_GROUP as GROUP


@dataclass(frozen=True)
class CampaignData:
    trial: np.ndarray
    status: list[str]
    source: list[str]
    objectives: dict[str, np.ndarray]
    directions: list[str]
    feasible: np.ndarray
    best_so_far: np.ndarray
    front: np.ndarray


def read_campaign(path: Path) -> CampaignData | None:
    """The campaign group of a run file, or None for a run that is not adaptive."""
    with h5py.File(path, "r") as handle:
        if GROUP not in handle:
            return None
        group = handle[GROUP]
        names = list(group["objectives"])
        directions = [str(d) for d in group.attrs["directions"]]
        return CampaignData(
            group["trial"][()],
            [s.decode() for s in group["status"][()]],
            [s.decode() for s in group["source"][()]],
            {name: group["objectives"][name][()] for name in _in_recipe_order(group, names)},
            directions,
            group["feasible"][()],
            group["best_so_far"][()],
            group["front"][()],
        )


def _in_recipe_order(group: h5py.Group, names: list[str]) -> list[str]:
    """HDF5 lists members alphabetically; the recipe's order is their creation order."""
    order = group["objectives"].attrs.get("order")
    return [str(n) for n in order] if order is not None else names


def plot_campaign(data: CampaignData, out: Path, *, title: str = "") -> int:
    """Draw the panels into `out` (PNG); returns how many panels were drawn."""
    names = list(data.objectives)
    panels = len(names) + (1 if len(names) >= 2 else 0)
    cols = 1 if panels == 1 else 2
    lines = -(-panels // cols)
    figure = Figure(figsize=(6.4 * cols, 3.8 * lines), layout="constrained")
    FigureCanvasAgg(figure)
    measured = np.array([s == "done" for s in data.status])
    for number, name in enumerate(names, start=1):
        ax = figure.add_subplot(lines, cols, number)
        _against_trial(ax, data, name, number == 1, measured)
    if len(names) >= 2:
        ax = figure.add_subplot(lines, cols, len(names) + 1)
        _front(ax, data, names[0], names[1], measured)
    if title:
        figure.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", dpi=100)
    return panels


def _against_trial(
    ax: Axes, data: CampaignData, name: str, first: bool, measured: np.ndarray
) -> None:
    values = data.objectives[name]
    ok = measured & data.feasible
    bad = measured & ~data.feasible
    person = np.array([s == "person" for s in data.source])
    initial = np.array([s == "initial" for s in data.source])
    ax.scatter(data.trial[ok & initial], values[ok & initial], marker="s", label="initial design")
    ax.scatter(
        data.trial[ok & ~initial & ~person], values[ok & ~initial & ~person], label="optimiser"
    )
    if (ok & person).any():
        ax.scatter(data.trial[ok & person], values[ok & person], marker="*", s=120, label="person")
    if bad.any():
        ax.scatter(
            data.trial[bad], values[bad], facecolors="none", edgecolors="grey", label="infeasible"
        )
    if first:  # best so far is kept for the first objective (the one a stop condition reads)
        ax.step(data.trial, data.best_so_far, where="post", color="black", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{name} ({data.directions[list(data.objectives).index(name)]})")
    ax.grid(visible=True, alpha=0.3)
    ax.legend(fontsize="small")


def _front(ax: Axes, data: CampaignData, x: str, y: str, measured: np.ndarray) -> None:
    ok = measured & data.feasible
    ax.scatter(data.objectives[x][ok], data.objectives[y][ok], color="lightgrey", label="feasible")
    on_front = np.isin(data.trial, data.front)
    order = np.argsort(data.objectives[x][on_front])
    ax.plot(
        data.objectives[x][on_front][order],
        data.objectives[y][on_front][order],
        marker="o",
        color="tab:red",
        label=f"Pareto front ({int(on_front.sum())})",
    )
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(visible=True, alpha=0.3)
    ax.legend(fontsize="small")
