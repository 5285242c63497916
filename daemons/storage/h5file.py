"""The synchronous h5py half of a run file: create, resume, append, summarise, finish.

Only the writer thread of `RunFile` calls this class: h5py blocks, and holds the GIL while it
compresses, so it never runs on the event loop. Every structure (groups, datasets, attributes)
is created before SWMR mode is switched on, because a SWMR writer may only grow datasets and
rewrite existing attributes; that is also why the closing attributes exist from the start.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5s

from .. import strictjson
from ..logging import get_logger
from ..version import package_version
from .errors import DiskNearlyFull, StorageError
from .layout import (
    COUNTS,
    ENTRY,
    ENTRY_TIMES,
    INSTRUMENT,
    LAYOUT_ATTR,
    LAYOUT_VERSION,
    LIBVER,
    POINT_END,
    POINT_INDEX,
    POINT_START,
    POINT_STATUS,
    SAMPLE,
    STATS,
    STATUS_DTYPE,
    SUMMARY,
    TIME_TEXT_DTYPE,
    ChannelSpec,
    Material,
    channel_group,
    stat_dataset,
)
from .superblock import clear_status_flags

EPOCH = "1970-01-01T00:00:00+00:00"
SUMMARY_CHUNK = 64
SUMMARY_ITEM_BYTES = 16  # the widest summary column: the S16 status


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def attribute_value(value: Any) -> Any:
    """Strings and numbers as themselves; anything structured as JSON text."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    return strictjson.dumps(value, sort_keys=True, default=str)


def write_at(dataset: h5py.Dataset, start: int, data: np.ndarray) -> None:
    """Grow a 1-D dataset to start + len(data) and write data there.

    h5py's low-level calls: the same HDF5 operations as `resize` + slice assignment, without
    the high-level selection machinery, which costs more than the write itself (2-3x per
    4096-sample block, measured).
    """
    count = data.shape[0]
    dataset.id.set_extent((start + count,))
    file_space = dataset.id.get_space()
    file_space.select_hyperslab((start,), (count,))
    dataset.id.write(h5s.create_simple((count,)), file_space, data)


class H5RunFile:
    """One run's HDF5 file, NeXus-minded (see `layout`), written by exactly one thread."""

    def __init__(
        self,
        path: Path,
        *,
        metadata: Mapping[str, Any],
        channels: list[ChannelSpec],
        parameters: list[str],
        parameter_units: Mapping[str, str],
        chunk: int,
        compression: str | None,
        durable: bool,
        min_free_bytes: int,
        materials: list[Material],
        clock: str,
    ) -> None:
        self.path = path
        self.materials = materials
        self.clock = clock
        self.metadata = dict(metadata)
        self.channels = channels
        self.parameters = parameters
        self.parameter_units = dict(parameter_units)
        self.chunk = chunk
        self.compression = compression
        self.durable = durable
        self.min_free_bytes = min_free_bytes
        self.rows = [0] * len(channels)
        self.points = 0
        self._file: h5py.File | None = None
        self._series: list[tuple[h5py.Dataset, h5py.Dataset, h5py.Dataset]] = []
        self._summary: dict[str, h5py.Dataset] = {}

    # -- opening -----------------------------------------------------------------------------

    def summary_columns(self) -> dict[str, tuple[str, str]]:
        """Summary column -> (dtype, units), in table order."""
        columns = {POINT_INDEX: ("i8", "")}
        for name in self.parameters:
            columns[name] = ("f8", self.parameter_units.get(name, ""))
        for spec in self.channels:
            for stat in STATS:
                kind = ("i8", "") if stat in COUNTS else ("f8", spec.unit)
                columns[stat_dataset(spec.name, stat)] = kind
        columns[POINT_START] = ("f8", "s")
        columns[POINT_END] = ("f8", "s")
        columns[POINT_STATUS] = (STATUS_DTYPE, "")
        return columns

    def check_free_space(self) -> None:
        """Stop while there is still room to close the file properly (see DiskNearlyFull)."""
        if self.min_free_bytes <= 0:
            return
        stats = os.statvfs(self.path.parent)
        free = stats.f_bavail * stats.f_frsize
        if free < self.min_free_bytes:
            raise DiskNearlyFull(
                f"{self.path}: only {free / 2**20:.0f} MiB free on its file system, below the"
                f" {self.min_free_bytes / 2**20:.0f} MiB reserve; free space and resume the run"
            )

    def create(self) -> None:
        """A new file; never overwrites one that holds a completed point.

        A file of this same run without any summary row is left by a process that died before
        its first checkpoint: it is taken over as a resume from zero. One that cannot be read
        as a run file (the process died while creating it) is renamed aside, never deleted.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.check_free_space()
        try:
            handle = h5py.File(self.path, "w-", libver=LIBVER, rdcc_nbytes=self._cache_bytes())
        except FileExistsError as exc:
            found = self._existing()
            if found == "this run, no point":
                self.resume({}, 0)
                return
            if found != "unreadable":
                message = f"{self.path}: already exists ({found}); not overwritten"
                raise StorageError(message) from exc
            self._set_aside()
            handle = h5py.File(self.path, "w-", libver=LIBVER, rdcc_nbytes=self._cache_bytes())
        try:
            self._build(handle)
        except BaseException:
            handle.close()
            raise
        self._start_swmr(handle)

    def resume(self, rows: Mapping[str, int], points: int) -> None:
        """Reopen after a crash and cut every dataset back to the checkpoint's counts.

        With nothing checkpointed yet, a missing or unreadable file (the process died while
        creating it) is simply created afresh: it held no completed point.
        """
        nothing_kept = points == 0 and not any(rows.values())
        if self.path.parent.is_dir():
            self.check_free_space()
        if not self.path.exists():
            if not nothing_kept:
                raise StorageError(f"{self.path}: missing; the checkpoint counts {points} points")
            self.create()
            return
        try:
            clear_status_flags(self.path)
            handle = h5py.File(self.path, "r+", libver=LIBVER, rdcc_nbytes=self._cache_bytes())
        except (OSError, ValueError) as exc:
            if "unable to lock" in str(exc):
                raise StorageError(
                    f"{self.path}: open in another process (a reader?); close it and resume again"
                ) from exc
            if not nothing_kept:
                raise StorageError(f"{self.path}: cannot reopen to resume: {exc}") from exc
            self._set_aside()
            self.create()
            return
        try:
            self._add_invalid_counts(handle)
            if nothing_kept and not self._layout_complete(handle):
                handle.close()
                self._set_aside()
                self.create()
                return
            self._check_run(handle)
            self._truncate(handle, rows, points)
            entry = handle[ENTRY]
            entry.attrs["status"] = "running"
            entry.attrs["resume_count"] = int(entry.attrs.get("resume_count", 0)) + 1
            entry.attrs["last_resumed"] = now_iso()
        except BaseException:
            handle.close()
            raise
        self._start_swmr(handle)

    def _cache_bytes(self) -> int:
        """Chunk cache per dataset: two chunks, not HDF5's 1 MiB default.

        Appends only ever touch the partial chunk a commit left behind and the one after it,
        and chunks are never read back; a bigger cache just fills with written chunks (256 KiB
        per dataset made a 20,000-point run ~5 MB bigger than a 2,000-point one, and HDF5's
        1 MiB default tens of MB over millions of samples).
        """
        return 2 * self.chunk * 8

    def _existing(self) -> str:
        """What the file already at `path` holds, in words for the error message."""
        try:
            with h5py.File(self.path, "r", libver=LIBVER, swmr=True) as handle:
                if not self._layout_complete(handle):
                    return "unreadable"
                found = handle[ENTRY].attrs.get("run_id")
                points = handle[f"{SUMMARY}/{POINT_INDEX}"].shape[0]
        except (OSError, KeyError, ValueError):
            return "unreadable"
        if found != self.metadata.get("run_id"):
            return f"run {found!r}"
        return "this run, no point" if points == 0 else f"this run, {points} points"

    def _add_invalid_counts(self, handle: h5py.File) -> None:
        """A file begun before NaN samples were counted apart gets its `<channel>_invalid`
        columns on resume, zero for the points it already holds (they were counted in n)."""
        if f"{SUMMARY}/{POINT_INDEX}" not in handle:
            return
        summary = handle[SUMMARY]
        points = summary[POINT_INDEX].shape[0]
        for spec in self.channels:
            name = stat_dataset(spec.name, "invalid")
            if name not in summary:
                self._dataset(summary, name, "i8", SUMMARY_CHUNK)
                summary[name].resize((points,))

    def _layout_complete(self, handle: h5py.File) -> bool:
        """Everything `_build` makes exists (its last act is the summary's attributes)."""
        names = [channel_group(c.name) for c in self.channels]
        names += [f"{SUMMARY}/{n}" for n in self.summary_columns()]
        return all(n in handle for n in names) and "axes" in handle[SUMMARY].attrs

    def _set_aside(self) -> None:
        aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
        self.path.rename(aside)
        get_logger(component="storage").warning(
            "unreadable data file set aside", file=str(self.path), moved_to=str(aside)
        )

    def _build(self, handle: h5py.File) -> None:
        version = package_version()
        handle.attrs.update(
            NX_class="NXroot",
            default=ENTRY,
            file_name=self.path.name,
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
        for spec in self.channels:
            self._build_log(handle, spec, identities if isinstance(identities, dict) else {})
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

    def _dataset(self, group: h5py.Group, name: str, dtype: str, chunk: int, **kw: Any) -> None:
        options: dict[str, Any] = {}
        if kw.pop("compress", False) and self.compression:
            options = {"compression": self.compression, "shuffle": True}
            if self.compression == "gzip":
                options["compression_opts"] = 1
        dataset = group.create_dataset(
            name, shape=(0,), maxshape=(None,), chunks=(chunk,), dtype=dtype, **options
        )
        for key, value in kw.items():
            dataset.attrs[key] = value

    def _build_log(self, handle: h5py.File, spec: ChannelSpec, identities: dict) -> None:
        owner = handle.require_group(f"{INSTRUMENT}/{spec.instrument}")
        if "NX_class" not in owner.attrs:
            owner.attrs["NX_class"] = "NXcollection"
            if spec.instrument in identities:
                owner.attrs["identity"] = str(identities[spec.instrument])
        log = handle.create_group(channel_group(spec.name))
        log.attrs.update(NX_class="NXlog", channel=spec.name, units=spec.unit)
        self._dataset(
            log, "time", "f8", self.chunk, compress=True, units="s", start=EPOCH, clock=self.clock
        )
        self._dataset(log, "value", "f8", self.chunk, compress=True, units=spec.unit)
        self._dataset(log, POINT_INDEX, "i8", self.chunk, compress=True)

    def _build_summary(self, handle: h5py.File) -> None:
        summary = handle.create_group(SUMMARY)
        labels = {stat_dataset(c.name, st): f"{c.name} {st}" for c in self.channels for st in STATS}
        for name, (dtype, units) in self.summary_columns().items():
            extra = {"units": units} if units else {}
            if name in labels:
                extra["long_name"] = labels[name]
            if units == "s":
                extra.update(start=EPOCH, clock=self.clock)
            self._dataset(summary, name, dtype, SUMMARY_CHUNK, **extra)
        axis = self.parameters[0] if self.parameters else POINT_INDEX
        means = [stat_dataset(spec.name, "mean") for spec in self.channels]
        for spec, mean in zip(self.channels, means, strict=True):
            summary[f"{mean}_errors"] = summary[stat_dataset(spec.name, "std")]
        summary.attrs.update(
            NX_class="NXdata",
            axes=axis,
            channels=strictjson.dumps([{"name": c.name, "unit": c.unit} for c in self.channels]),
            parameters=strictjson.dumps(
                [{"name": p, "unit": self.parameter_units.get(p, "")} for p in self.parameters]
            ),
        )
        summary.attrs[f"{axis}_indices"] = 0
        if means:
            summary.attrs["signal"] = means[0]
        if len(means) > 1:
            summary.attrs["auxiliary_signals"] = means[1:]

    def _check_run(self, handle: h5py.File) -> None:
        run_id = self.metadata.get("run_id")
        found = handle[ENTRY].attrs.get("run_id") if ENTRY in handle else None
        if run_id is not None and found != run_id:
            raise StorageError(f"{self.path}: holds run {found!r}, not {run_id!r}")
        missing = [c.name for c in self.channels if channel_group(c.name) not in handle]
        missing += [n for n in self.summary_columns() if f"{SUMMARY}/{n}" not in handle]
        if missing:
            raise StorageError(f"{self.path}: lacks {', '.join(missing)}; not this run's layout")

    def _truncate(self, handle: h5py.File, rows: Mapping[str, int], points: int) -> None:
        for spec in self.channels:
            keep = int(rows.get(spec.name, 0))
            group = handle[channel_group(spec.name)]
            for name in ("time", "value", POINT_INDEX):
                dataset = group[name]
                if dataset.shape[0] < keep:
                    raise StorageError(
                        f"{self.path}: {spec.name}/{name} has {dataset.shape[0]} rows but the"
                        f" checkpoint counts {keep}; the file lost data the state database has"
                    )
                dataset.resize((keep,))
        for name in self.summary_columns():
            dataset = handle[f"{SUMMARY}/{name}"]
            if dataset.shape[0] < points:
                raise StorageError(
                    f"{self.path}: summary/{name} has {dataset.shape[0]} rows but the checkpoint"
                    f" counts {points} points"
                )
            dataset.resize((points,))

    def _start_swmr(self, handle: h5py.File) -> None:
        handle.flush()
        handle.swmr_mode = True
        self._file = handle
        self._series = [
            tuple(handle[f"{channel_group(c.name)}/{n}"] for n in ("time", "value", POINT_INDEX))
            for c in self.channels
        ]
        self._summary = {n: self._open_summary(handle, n) for n in self.summary_columns()}
        self.rows = [series[0].shape[0] for series in self._series]
        self.points = self._summary[POINT_INDEX].shape[0]
        self._sync()

    @staticmethod
    def _open_summary(handle: h5py.File, name: str) -> h5py.Dataset:
        """A summary column with a chunk cache of two chunks, not the file's default.

        A column grows by a row per point and its chunks are never read back, yet a flush
        does not evict them: with the default cache every column kept up to 256 KiB of
        512-byte chunks, and a 20,000-point run grew by tens of MB (`bench.engine_rss`).
        """
        access = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
        access.set_chunk_cache(7, 2 * SUMMARY_CHUNK * SUMMARY_ITEM_BYTES, 1.0)
        return h5py.Dataset(h5py.h5d.open(handle.id, f"{SUMMARY}/{name}".encode(), dapl=access))

    # -- writing -----------------------------------------------------------------------------

    def append(self, channel: int, time: np.ndarray, value: np.ndarray, point: np.ndarray) -> None:
        start = self.rows[channel]
        for dataset, data in zip(self._series[channel], (time, value, point), strict=True):
            write_at(dataset, start, data)
        self.rows[channel] = start + time.shape[0]

    def write_points(self, rows: Sequence[Mapping[str, float | int | bytes]]) -> None:
        """Append summary rows (one write per column for all of them), flush, fsync.

        The sample blocks of those points were queued before this call, so one flush makes
        the whole batch durable; the cost per column is paid per batch, not per point.
        """
        self.check_free_space()
        if rows:
            index = self.points
            for name, dataset in self._summary.items():
                column = np.asarray([row[name] for row in rows], dtype=dataset.dtype)
                write_at(dataset, index, column)
            self.points = index + len(rows)
        self._sync()

    def finish(self, status: str, extra: Mapping[str, Any] | None) -> None:
        """Record how the run ended and close; existing attributes only (SWMR forbids new)."""
        handle = self._require()
        entry = handle[ENTRY]
        entry.attrs.modify("status", status)
        entry["end_time"][()] = np.bytes_(now_iso())
        entry.attrs.modify("close_metadata", strictjson.dumps(dict(extra or {}), default=str))
        self._sync()
        handle.close()
        self._file, self._series, self._summary = None, [], {}

    def abandon(self) -> None:
        """Let go of the file after a failed write, leaving it as a killed writer would.

        HDF5 (2.0 under h5py 3.16, measured with a full disk) crashes the process with a
        segmentation fault when it closes a SWMR file whose flush failed — at once, or at exit
        if the handle is kept. So the file descriptor is first pointed at /dev/null: the close
        then "succeeds" into the void, the file on disk keeps its last good flush plus whatever
        part of the failed one landed (SWMR orders those writes), and `resume` repairs it.
        """
        handle, self._file = self._file, None
        datasets = [d for series in self._series for d in series] + list(self._summary.values())
        self._series, self._summary = [], {}
        if handle is None:
            return
        void = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(void, handle.id.get_vfd_handle())
        finally:
            os.close(void)
        for obj in [*datasets, handle]:
            with contextlib.suppress(Exception):
                obj.id.close()

    def _require(self) -> h5py.File:
        if self._file is None:
            raise StorageError(f"{self.path}: not open")
        return self._file

    def _sync(self) -> None:
        """Flush HDF5's caches; with `durable`, also fsync so a power cut keeps the point."""
        handle = self._require()
        handle.flush()
        if self.durable:
            os.fsync(handle.id.get_vfd_handle())
