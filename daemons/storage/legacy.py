"""Reading run files of the layouts before 3 (ADR 0073): one NXlog group per channel, and
summary columns per channel and statistic.

Layout 2 (release 0.2) names a column `furnace__temperature_mean` and a channel's group
`entry/instrument/<instrument as a NeXus name>/<channel>`; layout 1 (release 0.1, no
`mdfd_layout` attribute) `furnace.temperature_mean` and the instrument as configured. Files
written before NaN samples were counted apart have no `_invalid` columns: those read as zeros.
Read only: runs in these layouts are not resumed by this release (see `h5file._check_run`).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from .errors import StorageError
from .layout import (
    INSTRUMENT,
    POINT_END,
    POINT_INDEX,
    POINT_START,
    POINT_STATUS,
    STATS,
    ChannelSpec,
    nexus_name,
    stat_column,
)
from .rows import ChannelData, whole_rows


def stat_dataset(channel: str, stat: str) -> str:
    """A statistic's dataset in a layout-2 /entry/summary, e.g. `furnace__temperature_mean`."""
    return f"{nexus_name(channel)}_{stat}"


def channel_group(channel: str, layout: int) -> str:
    """A channel's NXlog group: `entry/instrument/furnace/temperature`; in layout 1 with the
    instrument's name as configured, in layout 2 as a NeXus name (`my-oven` -> `my_oven`)."""
    instrument, _, name = channel.partition(".")
    return f"{INSTRUMENT}/{instrument if layout == 1 else nexus_name(instrument)}/{name}"


def summary_columns(
    group: h5py.Group, params: list[dict[str, str]], channels: list[ChannelSpec], layout: int
) -> dict[str, np.ndarray]:
    """Column name as programs know it (`furnace.temperature_mean`) -> its values."""
    stored = stat_column if layout == 1 else stat_dataset
    names = [POINT_INDEX, *(p["name"] for p in params), POINT_START, POINT_END, POINT_STATUS]
    paths = list(names)
    for channel in channels:
        for stat in STATS:
            if stat == "invalid" and stored(channel.name, stat) not in group:
                continue
            names.append(stat_column(channel.name, stat))
            paths.append(stored(channel.name, stat))
    data = whole_rows([group[path] for path in paths])
    return dict(zip(names, data, strict=True))


def read_channel(handle: h5py.File, path: Path, channel: str) -> ChannelData:
    layout = int(handle.attrs.get("mdfd_layout", 1))
    name = channel_group(channel, layout)
    if name not in handle:
        raise StorageError(f"{path}: no channel {channel!r}")
    group = handle[name]
    time, value, point = whole_rows([group["time"], group["value"], group[POINT_INDEX]])
    return ChannelData(time, value, point)
