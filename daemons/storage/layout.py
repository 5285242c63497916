"""Where things live inside a run's HDF5 file: one place for the writer, reader and exporters.

```
/                                   NXroot   default="entry"
/entry                              NXentry  run metadata as attributes, default="summary"
/entry/instrument                   NXinstrument
/entry/instrument/<instrument>      NXcollection  identity
/entry/instrument/<instrument>/<channel>   NXlog  time, value, point_index (extendible)
/entry/summary                      NXdata   one row per point, signal/axes set
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ENTRY = "entry"
INSTRUMENT = f"{ENTRY}/instrument"
SUMMARY = f"{ENTRY}/summary"

LIBVER = ("v110", "v110")
"""Lowest format that allows SWMR, and highest that Debian's HDF5 1.10 tools can read."""

STATS = ("mean", "std", "min", "max", "n", "invalid")
"""Per channel and point; `invalid` counts NaN/±inf samples, which n and the rest leave out."""
COUNTS = frozenset({"n", "invalid"})
POINT_INDEX = "point_index"
POINT_START = "start_time"
POINT_END = "end_time"
POINT_STATUS = "status"
STATUS_DTYPE = "S16"
"""Fixed-length ASCII ("completed", "failed", "skipped"): no heap traffic in SWMR mode."""
RESERVED = frozenset({POINT_INDEX, POINT_START, POINT_END, POINT_STATUS})


@dataclass(frozen=True)
class ChannelSpec:
    """A recorded channel: its qualified name ("instrument.channel") and unit."""

    name: str
    unit: str

    @property
    def instrument(self) -> str:
        return self.name.partition(".")[0]

    @property
    def short(self) -> str:
        return self.name.partition(".")[2]


def check_channel_name(name: str) -> None:
    instrument, dot, channel = name.partition(".")
    if not (instrument and dot and channel) or "/" in name or "." in channel:
        raise ValueError(f"channel {name!r}: expected 'instrument.channel'")


def channel_group(channel: str) -> str:
    """Path of a channel's NXlog group, e.g. entry/instrument/furnace/temperature."""
    instrument, _, name = channel.partition(".")
    return f"{INSTRUMENT}/{instrument}/{name}"


def stat_column(channel: str, stat: str) -> str:
    """Summary column of one statistic, e.g. `furnace.temperature_mean`."""
    return f"{channel}_{stat}"


def run_file_path(data_dir: Path, run_id: str) -> Path:
    """The one convention by which the engine writes and `mdfd export`/`plot` find a run."""
    if not run_id or "/" in run_id or run_id in (".", "..") or "\x00" in run_id:
        raise ValueError(f"run id {run_id!r} cannot name a file")
    return Path(data_dir) / f"{run_id}.h5"
