"""`/entry/campaign` of an adaptive run's HDF5 file: every trial, its objectives, the best.

Written when the run's file is closed (a file being written is in SWMR mode, where no group
can be added), from the campaign's trials in the state database, and rewritten whole by a
resumed run's close: the database is the record, this group is its copy beside the data, so a
reader of the file alone sees how each point was chosen and what the campaign found.
A group of its own, apart from the series and the summary, so the two layouts change apart.

Layout (one row per trial, rejected proposals included; point_index -1 for those never run):
  trial, point_index, status, source, parameters/<name>, objectives/<name>, feasible,
  best_so_far (first objective), front (trial numbers of the best point or the Pareto front);
  attributes: optimiser, optimiser_version, seed, directions, objective_channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from mdfd.daemons.storage.layout import CAMPAIGN_GROUP as GROUP
from mdfd.daemons.store.campaign import TrialRecord
from mdfd.recipes.adaptive import AdaptiveSweep

from .front import best_so_far, front
from .proposer import as_trial


def write_campaign(path: Path, sweep: AdaptiveSweep, records: Sequence[TrialRecord]) -> None:
    """Replace the file's campaign group with these trials (blocking: call it in a thread)."""
    trials = [as_trial(r) for r in records]
    directions = [o.direction for o in sweep.objectives.values()]
    strings = h5py.string_dtype()
    with h5py.File(path, "a") as handle:
        if GROUP in handle:
            del handle[GROUP]
        group = handle.create_group(GROUP)
        group.attrs["NX_class"] = "NXcollection"
        group.attrs["optimiser"] = records[0].optimiser if records else sweep.optimiser
        group.attrs["optimiser_version"] = records[0].optimiser_version if records else ""
        group.attrs["seed"] = sweep.seed
        group.attrs["directions"] = np.array(directions, dtype=strings)
        group.attrs["objective_channels"] = np.array(
            [f"{o.reduce}({o.channel})" for o in sweep.objectives.values()], dtype=strings
        )
        group["trial"] = np.array([r.trial for r in records], dtype="i8")
        group["point_index"] = np.array(
            [-1 if r.point_index is None else r.point_index for r in records], dtype="i8"
        )
        group.create_dataset("status", data=[r.status for r in records], dtype=strings)
        group.create_dataset("source", data=[r.source for r in records], dtype=strings)
        parameters = group.create_group("parameters")
        for name, parameter in sweep.parameters.items():
            parameters[name] = np.array([r.parameters[name] for r in records], dtype="f8")
            parameters[name].attrs["units"] = parameter.unit
        objectives = group.create_group("objectives")
        objectives.attrs["order"] = np.array(list(sweep.objectives), dtype=strings)  # HDF5 sorts
        for position, name in enumerate(sweep.objectives):
            objectives[name] = np.array(
                [t.values[position] if t.state == "done" else np.nan for t in trials], dtype="f8"
            )
        group["feasible"] = np.array([t.feasible for t in trials], dtype=bool)
        group["best_so_far"] = np.array(best_so_far(trials, directions), dtype="f8")
        group["front"] = np.array([t.number for t in front(trials, directions)], dtype="i8")
