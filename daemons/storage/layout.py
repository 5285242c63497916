"""Where things live inside a run's HDF5 file: one place for the writer, reader and exporters.

```
/                                   NXroot   default="entry", mdfd_layout=3
/entry                              NXentry  run metadata as attributes, default="summary"
/entry/start_time, /entry/end_time  NX_DATE_TIME fields (ISO 8601, wall clock; end "" while open)
/entry/sample                       NXsample the recipe's materials, one field per vocabulary code
/entry/instrument                   NXinstrument
/entry/instrument/<instrument>      NXcollection  identity, instrument (the true name)
/entry/instrument/<instrument>/data NXdata   one row per scan of the instrument (extendible):
    value[scans, channels]  f8, signal; `channels`/`channel_units` attributes name the columns
    time[scans]             f8, the scan's time (s since the Unix epoch, `clock` attribute)
    point_index[scans]      i8
    sampled[scans, channels] u1, 1 where the scan read that channel (0: value is a NaN filler)
/entry/instrument/<instrument>/log  NXlog    soft links to data/time and data/value
/entry/summary                      NXdata   one row per point, signal="mean", axes set:
    point_index, <parameter>..., start_time, end_time, status          [points]
    mean, std, min, max, n, invalid                                   [points, channels]
    mean_errors (= std, a hard link); `channels`/`channel_units` name the columns
```

A file holds a few datasets per instrument and six statistics in all, whatever the number of
channels (ADR 0072): creating a 10,000-channel file is creating ~500 datasets, not 80,000.
Every name in the file follows the NeXus naming rule `^[a-zA-Z0-9_]+$` (ADR 0040): an
instrument `my-furnace` is the group `my_furnace`; true names are kept in attributes. Files of
layout 2 (release 0.2: per-channel NXlog groups and per-channel summary columns such as
`furnace__temperature_mean`) and layout 1 (release 0.1: dotted column names, no `mdfd_layout`
attribute) are still read by `reader` (ADR 0073).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ENTRY = "entry"
INSTRUMENT = f"{ENTRY}/instrument"
SUMMARY = f"{ENTRY}/summary"
SAMPLE = f"{ENTRY}/sample"
CAMPAIGN_GROUP = f"{ENTRY}/campaign"  # an adaptive run's trials (engine/campaign_file.py)
LAYOUT_ATTR = "mdfd_layout"
LAYOUT_VERSION = 3
ENTRY_TIMES = ("start_time", "end_time")
"""NXentry fields written as fixed-length ISO 8601 text (SWMR cannot grow a variable string)."""
TIME_TEXT_DTYPE = "S40"

LIBVER = ("v110", "v110")
"""Lowest format that allows SWMR, and highest that Debian's HDF5 1.10 tools can read."""

STATS = ("mean", "std", "min", "max", "n", "invalid")
"""Per channel and point; `invalid` counts NaN/±inf samples, which n and the rest leave out."""
COUNTS = frozenset({"n", "invalid"})
SERIES = "data"
"""The NXdata group of an instrument's scans, inside its NXcollection."""
SERIES_FIELDS = ("time", "value", "point_index", "sampled")
SERIES_LOG = "log"
"""An NXlog view of the same scans (soft links to `time` and `value`), beside `data`."""
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


@dataclass(frozen=True)
class Material:
    """One item of the recipe's `materials`, stored in /entry/sample as written in the recipe."""

    category: str  # "raw_materials" or "composition"
    code: str  # the vocabulary code, e.g. RM_WIRE_DIAMETER (already a NeXus-valid name)
    value: float | str
    unit: str = ""


CLOCKS = ("wall", "simulated")
"""What point and sample times are: the wall clock (a real MDF), or the simulated process
clock of a sim config, which runs `time_scale` times faster than the wall from the moment the
engine started (both as seconds since the Unix epoch, UTC)."""


def check_channel_name(name: str) -> None:
    instrument, dot, channel = name.partition(".")
    if not (instrument and dot and channel) or "/" in name or "." in channel:
        raise ValueError(f"channel {name!r}: expected 'instrument.channel'")


NEXUS_NAME = re.compile(r"^[a-zA-Z0-9_]+$")


def nexus_name(text: str) -> str:
    """`text` as a NeXus-valid name: `.` becomes `__`, any other character outside
    [a-zA-Z0-9_] (an instrument's `-`) becomes `_`. Collisions are refused by the writer."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", text.replace(".", "__"))


def check_nexus_names(channels: list[ChannelSpec], parameters: list[str]) -> None:
    """Refuse names that meet in the file: instruments that become the same group (`a-b` and
    `a_b`), parameters named like a summary dataset (`mean`, `status`, ...)."""
    instruments: dict[str, str] = {}
    for spec in channels:
        group = nexus_name(spec.instrument)
        if instruments.setdefault(group, spec.instrument) != spec.instrument:
            raise ValueError(
                f"instruments {instruments[group]!r} and {spec.instrument!r} are both"
                f" {group!r} in the data file; rename one"
            )
    taken = RESERVED | set(STATS) | {"mean_errors"}
    clashes = [p for p in parameters if p in taken or "/" in p or "." in p]
    if clashes:
        raise ValueError(f"parameter names {clashes} clash with summary columns")


def instrument_group(instrument: str) -> str:
    """Path of an instrument's group, e.g. entry/instrument/my_furnace."""
    return f"{INSTRUMENT}/{nexus_name(instrument)}"


def series_group(instrument: str) -> str:
    """Path of an instrument's scans (NXdata), e.g. entry/instrument/furnace/data."""
    return f"{instrument_group(instrument)}/{SERIES}"


def stat_column(channel: str, stat: str) -> str:
    """A statistic's column as programs and the CSV name it, e.g. `furnace.temperature_mean`
    (also its dataset name in a layout-1 file)."""
    return f"{channel}_{stat}"


def run_file_path(data_dir: Path, run_id: str) -> Path:
    """The one convention by which the engine writes and `mdfd export`/`plot` find a run."""
    if not run_id or "/" in run_id or run_id in (".", "..") or "\x00" in run_id:
        raise ValueError(f"run id {run_id!r} cannot name a file")
    return Path(data_dir) / f"{run_id}.h5"
