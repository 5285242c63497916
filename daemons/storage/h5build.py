"""Creating a new run file's structure (layout 3, see `layout`): every group, dataset and attribute.

Everything is made here before SWMR mode starts, because a SWMR writer may only grow datasets
and rewrite existing attributes. The series and the summary statistics are 2-D, one column per
channel, so the number of HDF5 objects grows with instruments, not channels (ADR 0072).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import h5py
import numpy as np

from mdfd.daemons.core import strictjson
from mdfd.daemons.core.version import package_version

from .layout import (
    COUNTS,
    ENTRY,
    ENTRY_TIMES,
    INSTRUMENT,
    LAYOUT_ATTR,
    LAYOUT_VERSION,
    POINT_END,
    POINT_INDEX,
    POINT_START,
    POINT_STATUS,
    SAMPLE,
    SERIES_FIELDS,
    SERIES_LOG,
    STATS,
    STATUS_DTYPE,
    SUMMARY,
    TIME_TEXT_DTYPE,
    ChannelSpec,
    Material,
    instrument_group,
    series_group,
)

EPOCH = "1970-01-01T00:00:00+00:00"
SUMMARY_CHUNK_ROWS = 64
SUMMARY_CHUNK_BYTES = 64 << 10
"""A 2-D summary chunk holds at most this much (one row when there are thousands of channels):
a point writes one row, so a wider chunk would only be rewritten more often."""
TEXT = h5py.string_dtype()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def attribute_value(value: Any) -> Any:
    """Strings and numbers as themselves; anything structured as JSON text."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    return strictjson.dumps(value, sort_keys=True, default=str)


@dataclass(frozen=True)
class InstrumentPlan:
    """One instrument's series: its true name and its channels, in column order."""

    name: str
    channels: tuple[ChannelSpec, ...]

    def rows_per_chunk(self, block_size: int) -> int:
        """Scans per chunk: about the bytes of `block_size` float64s, at least one scan."""
        return max(1, block_size // max(1, len(self.channels)))


def plan_instruments(channels: Sequence[ChannelSpec]) -> list[InstrumentPlan]:
    """Channels grouped by instrument, in order of first appearance."""
    grouped: dict[str, list[ChannelSpec]] = {}
    for spec in channels:
        grouped.setdefault(spec.instrument, []).append(spec)
    return [InstrumentPlan(name, tuple(specs)) for name, specs in grouped.items()]


def summary_rows_per_chunk(width: int) -> int:
    return max(1, min(SUMMARY_CHUNK_ROWS, SUMMARY_CHUNK_BYTES // (8 * max(1, width))))


@dataclass(frozen=True)
class FilePlan:
    """What a new run file holds; `build` makes exactly this."""

    name: str
    metadata: Mapping[str, Any]
    channels: Sequence[ChannelSpec]
    parameters: Sequence[str]
    parameter_units: Mapping[str, str]
    materials: Sequence[Material]
    clock: str
    block_size: int
    compression: str | None

    def summary_scalars(self) -> dict[str, tuple[str, str]]:
        """The 1-D summary columns -> (dtype, units), in table order."""
        columns = {POINT_INDEX: ("i8", "")}
        for name in self.parameters:
            columns[name] = ("f8", self.parameter_units.get(name, ""))
        columns[POINT_START] = ("f8", "s")
        columns[POINT_END] = ("f8", "s")
        columns[POINT_STATUS] = (STATUS_DTYPE, "")
        return columns

    def build(self, handle: h5py.File) -> None:
        version = package_version()
        handle.attrs.update(
            NX_class="NXroot",
            default=ENTRY,
            file_name=self.name,
            file_time=now_iso(),
            creator=f"mdfd {version}",
            HDF5_Version=h5py.version.hdf5_version,
            h5py_version=h5py.version.version,
        )
        handle.attrs[LAYOUT_ATTR] = LAYOUT_VERSION
        entry = handle.create_group(ENTRY)
        attrs: dict[str, Any] = {"software_version": version}
        attrs.update(self.metadata)
        if "recipe_text" in attrs and "recipe_sha256" not in attrs:
            attrs["recipe_sha256"] = hashlib.sha256(str(attrs["recipe_text"]).encode()).hexdigest()
        attrs.update(NX_class="NXentry", default="summary", status="running", clock=self.clock)
        attrs.update(close_metadata="{}", resume_count=0, last_resumed="")
        for key, value in attrs.items():
            entry.attrs[key] = attribute_value(value)
        self._build_times(entry)
        self._build_sample(handle)
        instrument = handle.create_group(INSTRUMENT)
        instrument.attrs["NX_class"] = "NXinstrument"
        identities = self.metadata.get("instrument_identities")
        for plan in plan_instruments(self.channels):
            self._build_series(handle, plan, identities if isinstance(identities, dict) else {})
        self._build_summary(handle)

    @staticmethod
    def _build_times(entry: h5py.Group) -> None:
        """NXentry's start_time/end_time fields; end_time stays "" until the run closes.

        Fixed-length text, because a SWMR writer may rewrite a dataset's bytes but not change
        its size; these two are wall-clock times (when the file was opened and closed).
        """
        for name in ENTRY_TIMES:
            text = now_iso() if name == "start_time" else ""
            field = entry.create_dataset(name, data=np.bytes_(text), dtype=TIME_TEXT_DTYPE)
            field.attrs["clock"] = "wall"

    def _build_sample(self, handle: h5py.File) -> None:
        """The recipe's materials as NXsample fields, one per vocabulary code (ADR 0041)."""
        sample = handle.create_group(SAMPLE)
        sample.attrs["NX_class"] = "NXsample"
        sample["name"] = str(self.metadata.get("recipe_name", ""))
        for category in ("raw_materials", "composition"):
            items = [m for m in self.materials if m.category == category]
            if not items:
                continue
            group = sample.create_group(category, track_order=True)  # the recipe's order
            group.attrs["NX_class"] = "NXcollection"
            for material in items:
                value = material.value
                field = group.create_dataset(
                    material.code, data=value if isinstance(value, str) else float(value)
                )
                field.attrs.update(vocabulary_code=material.code, units=material.unit)

    def _dataset(
        self, group: h5py.Group, name: str, dtype: str, chunk: tuple[int, ...], **kw: Any
    ) -> h5py.Dataset:
        """An empty dataset extendible along its first axis (the width is fixed)."""
        options: dict[str, Any] = {}
        if kw.pop("compress", False) and self.compression:
            options = {"compression": self.compression, "shuffle": True}
            if self.compression == "gzip":
                options["compression_opts"] = 1
        width = chunk[1:]  # () for a column; (0,) for statistics of a run without channels
        dataset = group.create_dataset(
            name,
            shape=(0, *width),
            maxshape=(None, *(n or None for n in width)),
            chunks=tuple(max(1, n) for n in chunk),
            dtype=dtype,
            **options,
        )
        for key, value in kw.items():
            dataset.attrs[key] = value
        return dataset

    @staticmethod
    def _name_columns(dataset: h5py.Dataset, channels: Sequence[ChannelSpec]) -> None:
        """The columns' true names and units; `units` too when every column shares one."""
        dataset.attrs.create("channels", [c.name for c in channels], dtype=TEXT)
        dataset.attrs.create("channel_units", [c.unit for c in channels], dtype=TEXT)
        units = {c.unit for c in channels}
        if len(units) == 1:
            dataset.attrs["units"] = units.pop()

    def _build_series(self, handle: h5py.File, plan: InstrumentPlan, identities: dict) -> None:
        owner = handle.create_group(instrument_group(plan.name))
        owner.attrs.update(NX_class="NXcollection", instrument=plan.name)
        if plan.name in identities:
            owner.attrs["identity"] = str(identities[plan.name])
        group = handle.create_group(series_group(plan.name))
        group.attrs.update(NX_class="NXdata", signal="value", axes=["time", "."], time_indices=0)
        rows, width = plan.rows_per_chunk(self.block_size), len(plan.channels)
        self._dataset(
            group, "time", "f8", (rows,), compress=True, units="s", start=EPOCH, clock=self.clock
        )
        value = self._dataset(group, "value", "f8", (rows, width), compress=True)
        value.attrs["long_name"] = f"{plan.name} channels"
        self._name_columns(value, plan.channels)
        self._dataset(group, POINT_INDEX, "i8", (rows,), compress=True)
        self._dataset(group, "sampled", "u1", (rows, width), compress=True)
        log = owner.create_group(SERIES_LOG)
        log.attrs["NX_class"] = "NXlog"
        for name in ("time", "value"):  # the same datasets, for readers that look for an NXlog
            log[name] = h5py.SoftLink(f"/{series_group(plan.name)}/{name}")

    def _build_summary(self, handle: h5py.File) -> None:
        summary = handle.create_group(SUMMARY)
        for name, (dtype, units) in self.summary_scalars().items():
            extra = {"units": units} if units else {}
            if units == "s":
                extra.update(start=EPOCH, clock=self.clock)
            self._dataset(summary, name, dtype, (SUMMARY_CHUNK_ROWS,), **extra)
        width = len(self.channels)
        chunk = (summary_rows_per_chunk(width), width)
        for stat in STATS:
            dataset = self._dataset(summary, stat, "i8" if stat in COUNTS else "f8", chunk)
            dataset.attrs["long_name"] = f"{stat} per point and channel"
            if stat in COUNTS:
                dataset.attrs.create("channels", [c.name for c in self.channels], dtype=TEXT)
            else:
                self._name_columns(dataset, self.channels)
        summary["mean_errors"] = summary["std"]
        axis = self.parameters[0] if self.parameters else POINT_INDEX
        summary.attrs.update(
            NX_class="NXdata",
            signal="mean",
            axes=[axis, "."],
            auxiliary_signals=["min", "max"],
            channels=strictjson.dumps([{"name": c.name, "unit": c.unit} for c in self.channels]),
            parameters=strictjson.dumps(
                [{"name": p, "unit": self.parameter_units.get(p, "")} for p in self.parameters]
            ),
        )
        summary.attrs[f"{axis}_indices"] = 0


def layout_names(plan: FilePlan) -> list[str]:
    """Every dataset `FilePlan.build` makes, as paths (to check a file is this run's layout)."""
    instruments = plan_instruments(plan.channels)
    names = [f"{series_group(p.name)}/{n}" for p in instruments for n in SERIES_FIELDS]
    names += [f"{SUMMARY}/{n}" for n in (*plan.summary_scalars(), *STATS)]
    return names
