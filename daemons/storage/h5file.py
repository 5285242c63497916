"""The synchronous h5py half of a run file: create, resume, append, summarise, finish.

Only the writer thread of `RunFile` calls this class: h5py blocks, and holds the GIL while it
compresses, so it never runs on the event loop. The structure of a new file is `h5build`'s;
this module opens it, cuts it back on resume, grows it, and closes it. The closing attributes
exist from the start because a SWMR writer may only rewrite existing ones.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5s

from mdfd.daemons.core import strictjson
from mdfd.daemons.core.logging import get_logger
from mdfd.daemons.core.stats import stat_field

from .errors import DiskNearlyFull, StorageError
from .h5build import FilePlan, layout_names, now_iso, plan_instruments, summary_rows_per_chunk
from .layout import (
    ENTRY,
    LAYOUT_ATTR,
    LAYOUT_VERSION,
    LIBVER,
    POINT_END,
    POINT_INDEX,
    POINT_START,
    POINT_STATUS,
    SERIES_FIELDS,
    STATS,
    SUMMARY,
    series_group,
)
from .superblock import clear_status_flags

SUMMARY_ITEM_BYTES = 16  # the widest 1-D summary column: the S16 status


def write_at(dataset: h5py.Dataset, start: int, data: np.ndarray) -> None:
    """Grow a dataset along its first axis to start + len(data) and write data there.

    h5py's low-level calls: the same HDF5 operations as `resize` + slice assignment, without
    the high-level selection machinery, which costs more than the write itself (2-3x per
    4096-sample block, measured).
    """
    count, rest = data.shape[0], data.shape[1:]
    dataset.id.set_extent((start + count, *rest))
    file_space = dataset.id.get_space()
    file_space.select_hyperslab((start, *(0 for _ in rest)), (count, *rest))
    dataset.id.write(h5s.create_simple(data.shape), file_space, data)


@dataclass(slots=True)
class PointRow:
    """One point's summary row: scalars by column, and its statistics as a table of the file's
    channels (`PointStats.table`: rows `N` to `INVALID`, a column per channel)."""

    point_index: int
    parameters: list[float]
    table: np.ndarray
    started: float
    ended: float
    status: bytes


class H5RunFile:
    """One run's HDF5 file, NeXus-minded (see `layout`), written by exactly one thread.

    Series are per instrument (index into `plan_instruments(plan.channels)`), one row per scan.
    """

    def __init__(self, path: Path, plan: FilePlan, *, durable: bool, min_free_bytes: int) -> None:
        self.path = path
        self.plan = plan
        self.instruments = plan_instruments(plan.channels)
        self.durable = durable
        self.min_free_bytes = min_free_bytes
        self.rows = [0] * len(self.instruments)
        self.points = 0
        self._file: h5py.File | None = None
        self._series: list[tuple[h5py.Dataset, ...]] = []
        self._summary: dict[str, h5py.Dataset] = {}

    # -- opening -----------------------------------------------------------------------------

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
            handle = self._open("w-")
        except FileExistsError as exc:
            found = self._existing()
            if found == "this run, no point":
                self.resume({}, 0)
                return
            if found != "unreadable":
                message = f"{self.path}: already exists ({found}); not overwritten"
                raise StorageError(message) from exc
            self._set_aside()
            handle = self._open("w-")
        try:
            self.plan.build(handle)
        except BaseException:
            handle.close()
            raise
        self._start_swmr(handle)

    def resume(self, rows: Mapping[str, int], points: int) -> None:
        """Reopen after a crash and cut every dataset back to the checkpoint's counts.

        `rows` are per channel, as `RunFile.mark_point` gave them (every channel of an
        instrument has its instrument's count). With nothing checkpointed yet, a missing or
        unreadable file (the process died while creating it) is simply created afresh.
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
            handle = self._open("r+")
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

    def _open(self, mode: str) -> h5py.File:
        """The file with a small chunk cache: appends only ever touch the partial chunk a commit
        left behind and the one after it, and chunks are never read back; a bigger cache just
        fills with written chunks (256 KiB per dataset made a 20,000-point run ~5 MB bigger
        than a 2,000-point one). Series and summary datasets set their own (`_start_swmr`)."""
        return h5py.File(self.path, mode, libver=LIBVER, rdcc_nbytes=2 * self.plan.block_size * 8)

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
        if found != self.plan.metadata.get("run_id"):
            return f"run {found!r}"
        return "this run, no point" if points == 0 else f"this run, {points} points"

    def _layout_complete(self, handle: h5py.File) -> bool:
        """Everything `FilePlan.build` makes exists (its last act is the summary's attributes)."""
        names = layout_names(self.plan)
        return all(n in handle for n in names) and "axes" in handle[SUMMARY].attrs

    def _set_aside(self) -> None:
        aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
        self.path.rename(aside)
        get_logger(component="storage").warning(
            "unreadable data file set aside", file=str(self.path), moved_to=str(aside)
        )

    def _check_run(self, handle: h5py.File) -> None:
        run_id = self.plan.metadata.get("run_id")
        found = handle[ENTRY].attrs.get("run_id") if ENTRY in handle else None
        if run_id is not None and found != run_id:
            raise StorageError(f"{self.path}: holds run {found!r}, not {run_id!r}")
        layout = handle.attrs.get(LAYOUT_ATTR)
        if layout != LAYOUT_VERSION:
            raise StorageError(
                f"{self.path}: written in file layout {layout or 1} by an older mdfd; this"
                f" release appends only to layout {LAYOUT_VERSION}: finish the run with the"
                " release that began it, or discard it (its file stays readable)"
            )
        missing = [n for n in layout_names(self.plan) if n not in handle]
        if missing:
            raise StorageError(f"{self.path}: lacks {', '.join(missing)}; not this run's layout")

    def _truncate(self, handle: h5py.File, rows: Mapping[str, int], points: int) -> None:
        for plan in self.instruments:
            keep = max((int(rows.get(c.name, 0)) for c in plan.channels), default=0)
            group = handle[series_group(plan.name)]
            for name in SERIES_FIELDS:
                self._cut(group[name], keep, f"{plan.name}/{name}", "rows")
        for name in (*self.plan.summary_scalars(), *STATS):
            self._cut(handle[f"{SUMMARY}/{name}"], points, f"summary/{name}", "points")

    def _cut(self, dataset: h5py.Dataset, keep: int, name: str, what: str) -> None:
        if dataset.shape[0] < keep:
            raise StorageError(
                f"{self.path}: {name} has {dataset.shape[0]} rows but the checkpoint counts"
                f" {keep} {what}; the file lost data the state database has"
            )
        dataset.resize(keep, axis=0)

    def _start_swmr(self, handle: h5py.File) -> None:
        handle.flush()
        handle.swmr_mode = True
        self._file = handle
        self._series = []
        for plan in self.instruments:
            width = len(plan.channels)
            cache = 2 * plan.rows_per_chunk(self.plan.block_size) * width * 8
            group = f"{series_group(plan.name)}/"
            self._series.append(tuple(self._open_dataset(group + n, cache) for n in SERIES_FIELDS))
        width = len(self.plan.channels)
        stat_cache = 2 * summary_rows_per_chunk(width) * max(1, width) * 8
        column_cache = 2 * 64 * SUMMARY_ITEM_BYTES
        self._summary = {
            n: self._open_dataset(f"{SUMMARY}/{n}", column_cache)
            for n in self.plan.summary_scalars()
        }
        self._summary.update({n: self._open_dataset(f"{SUMMARY}/{n}", stat_cache) for n in STATS})
        self.rows = [series[0].shape[0] for series in self._series]
        self.points = self._summary[POINT_INDEX].shape[0]
        self._sync()

    def _open_dataset(self, name: str, cache_bytes: int) -> h5py.Dataset:
        """A dataset with a chunk cache of about two chunks, not the file's default.

        A dataset grows at its end and its chunks are never read back, yet a flush does not
        evict them: with the default cache every summary column kept up to 256 KiB of
        512-byte chunks, and a 20,000-point run grew by tens of MB (`bench.engine_rss`).
        """
        access = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
        access.set_chunk_cache(7, cache_bytes, 1.0)
        handle = self._require()
        return h5py.Dataset(h5py.h5d.open(handle.id, name.encode(), dapl=access))

    # -- writing -----------------------------------------------------------------------------

    def append(
        self,
        instrument: int,
        time: np.ndarray,
        value: np.ndarray,
        point: np.ndarray,
        sampled: np.ndarray,
    ) -> None:
        """Scans of one instrument: time/point [scans], value/sampled [scans, channels]."""
        start = self.rows[instrument]
        series = self._series[instrument]
        for dataset, data in zip(series, (time, value, point, sampled), strict=True):
            write_at(dataset, start, data)
        self.rows[instrument] = start + time.shape[0]

    def write_points(self, rows: Sequence[PointRow]) -> None:
        """Append summary rows (one write per dataset for all of them), flush, fsync.

        The scans of those points were queued before this call, so one flush makes the whole
        batch durable; the cost per dataset is paid per batch, not per point.
        """
        self.check_free_space()
        if rows:
            index = self.points
            columns: dict[str, list] = {
                POINT_INDEX: [r.point_index for r in rows],
                POINT_START: [r.started for r in rows],
                POINT_END: [r.ended for r in rows],
                POINT_STATUS: [r.status for r in rows],
            }
            for k, name in enumerate(self.plan.parameters):
                columns[name] = [r.parameters[k] for r in rows]
            for name, values in columns.items():
                dataset = self._summary[name]
                write_at(dataset, index, np.asarray(values, dtype=dataset.dtype))
            tables = np.stack([r.table for r in rows])  # the batch's fields in one pass each
            for stat in STATS:
                dataset = self._summary[stat]
                block = stat_field(tables, stat).astype(dataset.dtype, copy=False)
                write_at(dataset, index, block)
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
