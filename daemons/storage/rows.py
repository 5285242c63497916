"""Whole rows of a table whose datasets a SWMR writer may be growing while we read, and a
channel's samples as readers return them."""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np


def whole_rows(datasets: list[h5py.Dataset]) -> list[np.ndarray]:
    """The datasets cut to the shortest: the writer appends to one dataset after another, so
    for a moment they differ in length, and a reader must see whole rows only."""
    for dataset in datasets:
        dataset.refresh()
    rows = min(dataset.shape[0] for dataset in datasets)
    return [dataset[:rows] for dataset in datasets]


@dataclass(frozen=True)
class ChannelData:
    """One channel's samples: time (epoch s), value, and the point each belongs to."""

    time: np.ndarray
    value: np.ndarray
    point_index: np.ndarray
