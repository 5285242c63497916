"""`RunFile`: stream a run's samples into its HDF5 file without blocking the event loop.

The engine calls `add_scan` per instrument and scan (one numpy row into that instrument's block,
see `scans`), or `add_scans` with many scans an instrument took on its own clock. A full block
(about `block_size` values, at least one scan) is handed to a single writer thread through a
queue bounded at `queue_blocks` blocks in flight; beyond that, blocks wait in a backlog until
the engine awaits `drain()`, which is the back-pressure: the producer is suspended until the
disk has caught up, so memory stays bounded by (queue_blocks + blocks added
between drains) blocks whatever the run's length.

A point ends in two halves so that checkpoints can be group-committed: `mark_point` (no I/O)
queues the point's summary row and returns the rows (scans) per channel up to the point's
end — the counts the engine stores in its checkpoint and hands back to `open(resume_rows=...,
resume_points=...)` after a crash, so that samples beyond them vanish; `commit()` then pushes
every buffered sample and queued summary row to the writer and flushes (and fsyncs) once for all
of them. Points measured while one commit is on disk share the next one.

Scalars only: a channel's value is one float per sample. Array-valued readings (spectra,
waveforms) are not stored by this writer; the engine must skip them or reduce them to scalars.
Sample times `t` and point start/end times are seconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mdfd.daemons.core.logging import get_logger
from mdfd.daemons.core.stats import PointStats, Stats

from .errors import MIN_FREE_BYTES, DiskNearlyFull, StorageError
from .h5build import FilePlan, plan_instruments
from .h5file import H5RunFile, PointRow
from .layout import (
    CLOCKS,
    ChannelSpec,
    Material,
    check_channel_name,
    check_nexus_names,
    series_group,
)
from .scans import ScanBlock, ScanBuffer
from .summary import SummaryRows

__all__ = ["ChannelSpec", "Material", "RunFile", "StorageError"]


@dataclass(slots=True)
class _Call:
    func: Callable[[], Any]
    future: concurrent.futures.Future[Any]
    always: bool


class RunFile:
    """One run's HDF5 file, fed from the event loop, written by its own thread."""

    def __init__(
        self,
        path: Path,
        *,
        metadata: dict[str, Any],
        channels: list[ChannelSpec],
        parameters: list[str],
        block_size: int = 4096,
        queue_blocks: int = 64,
        parameter_units: Mapping[str, str] | None = None,
        compression: str | None = "gzip",
        durable: bool = True,
        io_timeout: float = 120.0,
        min_free_bytes: int = MIN_FREE_BYTES,
        materials: list[Material] | None = None,
        clock: str = "wall",
    ) -> None:
        """`metadata` becomes attributes of /entry (see README: run_id, mdf_id, mdf_domain,
        recipe_name, recipe_version, recipe_text, config_text, instrument_identities {name: id},
        software_version; structured values are stored as JSON text). `durable` fsyncs at each
        point so a power cut cannot lose a checkpointed point; `io_timeout` bounds every wait
        on the writer, so a stalled disk surfaces as a StorageError instead of a hang.
        `min_free_bytes` is the disk reserve checked at open and at every point: below it the
        run stops with DiskNearlyFull while the file can still be closed properly.
        `materials` go to /entry/sample; `clock` ("wall" or "simulated", see `layout.CLOCKS`)
        says what the sample and point times are."""
        if block_size < 1 or queue_blocks < 1:
            raise ValueError("block_size and queue_blocks must be at least 1")
        names = [spec.name for spec in channels]
        for name in names:
            check_channel_name(name)
        if len(set(names)) != len(names) or len(set(parameters)) != len(parameters):
            raise ValueError("channel and parameter names must be unique")
        check_nexus_names(channels, parameters)
        if clock not in CLOCKS:
            raise ValueError(f"clock {clock!r}: expected one of {', '.join(CLOCKS)}")
        self.path = Path(path)
        self.channels = list(channels)
        self.parameters = list(parameters)
        self._summary = SummaryRows(self.path, names, self.parameters)
        plan = FilePlan(
            name=self.path.name,
            metadata=dict(metadata),
            channels=self.channels,
            parameters=self.parameters,
            parameter_units=dict(parameter_units or {}),
            materials=list(materials or []),
            clock=clock,
            block_size=block_size,
            compression=compression,
        )
        self._scans = [
            ScanBuffer(number, instrument, instrument.rows_per_chunk(block_size))
            for number, instrument in enumerate(plan_instruments(self.channels))
        ]
        self._by_instrument = {b.names[0].partition(".")[0]: b for b in self._scans}
        self._queue_blocks = queue_blocks
        self._io_timeout = io_timeout
        self._file = H5RunFile(self.path, plan, durable=durable, min_free_bytes=min_free_bytes)
        self._jobs: queue.SimpleQueue[ScanBlock | _Call | None] = queue.SimpleQueue()
        self._handed = 0  # blocks put in the queue (event loop side)
        self._written = 0  # blocks the writer finished (writer side)
        self._waiters = 0  # drains waiting for the queue to fall to half (acquisition, commit)
        self._rows_handed = [0] * len(self._scans)  # per instrument: scans handed off so far
        self._marked: list[PointRow] = []  # summary rows not yet committed
        self._backlog: deque[ScanBlock] = deque()
        self._space = asyncio.Event()
        self._error: BaseException | None = None
        self._reported = False  # the caller has seen `_error` raised
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._log = get_logger(component="storage", file=str(self.path))

    # -- the engine's API --------------------------------------------------------------------

    async def open(
        self, resume_rows: dict[str, int] | None = None, resume_points: int | None = None
    ) -> None:
        """Create the file, or (with resume counts) reopen it and cut it back to them."""
        if self._thread is not None or self._closed:
            raise StorageError(f"{self.path}: a RunFile opens once")
        unknown = set(resume_rows or {}) - set(self._summary.columns)
        if unknown:
            raise ValueError(f"resume_rows names unknown channels {sorted(unknown)}")
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"mdfd-hdf5-writer {self.path.name}", daemon=True
        )
        self._thread.start()
        resuming = resume_rows is not None or resume_points is not None
        action: Callable[[], Any] = self._file.create
        if resuming:
            action = partial(self._file.resume, dict(resume_rows or {}), int(resume_points or 0))
        try:
            await self._call(action)
            self._rows_handed = await self._call(lambda: list(self._file.rows))
        except BaseException:
            self._closed = True
            await self._stop_thread()
            raise
        self._log.info("data file open", resumed=resuming)

    def add_scan(
        self,
        instrument: str,
        channels: Sequence[str],
        t: float,
        values: np.ndarray,
        point_index: int,
    ) -> bool:
        """Buffer one scan of `instrument`: `values[k]` (float64) is channel `channels[k]`
        (qualified names, `instrument.channel`; all of the instrument's or some), all taken at
        `t`. A full block goes to the writer (or the backlog, see drain).

        One numpy row per instrument and scan. Returns `needs_drain`'s answer whenever a block
        was handed off (False otherwise), so a fast producer can write
        `if run.add_scan(...): await run.drain()` at no extra cost.
        """
        buffer = self._buffer_of(instrument)
        try:
            buffer.add_scan(channels, t, values, point_index)
        except (KeyError, ValueError) as exc:
            raise self._refusal(instrument, exc) from None
        if buffer.count == buffer.rows:
            self._hand_off(buffer)
            return bool(self._backlog)
        return False

    def add_scans(
        self,
        instrument: str,
        channels: Sequence[str],
        times: np.ndarray,
        values: np.ndarray,
        point_index: int,
    ) -> bool:
        """Buffer many scans of `instrument` at once: `values[k, i]` is channel `channels[i]`
        in the scan taken at `times[k]` (what an instrument sampling on its own clock hands
        over, `drivers.Scans`). The same as `add_scan` for each row, in slices of the block:
        full blocks go to the writer; the answer is `needs_drain`'s."""
        buffer = self._buffer_of(instrument)
        done = 0
        while done < times.shape[0]:
            try:
                done += buffer.add_scans(channels, times[done:], values[done:], point_index)
            except (KeyError, ValueError) as exc:
                raise self._refusal(instrument, exc) from None
            if buffer.count == buffer.rows:
                self._hand_off(buffer)
        return bool(self._backlog)

    def _buffer_of(self, instrument: str) -> ScanBuffer:
        buffer = self._by_instrument.get(instrument)
        if buffer is None:
            raise ValueError(f"{self.path}: instrument {instrument!r} was not declared")
        return buffer

    def _refusal(self, instrument: str, exc: KeyError | ValueError) -> ValueError:
        """What a scan the instrument's buffer refused says: the channel that is not the
        instrument's (KeyError), or the shape that does not fit (ValueError)."""
        if isinstance(exc, KeyError):
            return ValueError(f"{self.path}: channel {exc.args[0]!r} is not of {instrument!r}")
        return ValueError(f"{self.path}: {instrument}: {exc}")

    @property
    def needs_drain(self) -> bool:
        """True once blocks wait beyond the bounded queue: await `drain()` soon.

        Cheap enough to test after every sample; a long acquisition that checks it keeps
        memory bounded by `queue_blocks` blocks however long it runs.
        """
        return bool(self._backlog)

    async def drain(self) -> None:
        """Wait until every block handed off so far is in the writer's bounded queue.

        When it must wait, it waits until the queue is down to half: producer and writer then
        each run in long stretches instead of handing the GIL to each other block by block.
        """
        self._refill()
        while self._backlog and self._error is None:
            self._space.clear()
            self._waiters += 1
            try:
                if self._handed - self._written > self._queue_blocks // 2:
                    async with asyncio.timeout(self._io_timeout):
                        await self._space.wait()
            except TimeoutError:
                raise StorageError(
                    f"{self.path}: the writer took no block for {self._io_timeout}s (disk stalled?)"
                ) from None
            finally:
                self._waiters -= 1
            self._refill()
        self._raise_if_failed()

    def mark_point(
        self,
        point_index: int,
        parameters: dict[str, float],
        stats: PointStats | Mapping[str, Stats],
        started: float,
        ended: float,
        status: str = "completed",
    ) -> dict[str, int]:
        """Queue the point's summary row for the next `commit`; rows per channel at its end.

        `stats` are the point's statistics as arrays (the engine's), or per channel (writers
        that summarise channel by channel); channels without any are NaN (n 0) in the row.
        `status` ("completed", "failed", "skipped") goes into the summary's status column, so
        a table reader can tell a measured point from one whose statistics are partial. Nothing
        is on disk until `commit()` returns.
        """
        self._raise_if_failed()
        row = self._summary.row(point_index, parameters, stats, started, ended, status)
        self._marked.append(row)
        return {
            name: self._rows_handed[buffer.number] + buffer.count
            for buffer in self._scans
            for name in buffer.names
        }

    async def commit(self) -> None:
        """Write every buffered sample and marked summary row, flush and fsync once.

        Samples taken after the last marked point go along (a resume cuts them off again);
        that is what lets one flush serve many points.
        """
        rows, self._marked = self._marked, []
        self._hand_off_all()
        await self.drain()
        await self._call(partial(self._file.write_points, rows))

    async def complete_point(
        self,
        point_index: int,
        parameters: dict[str, float],
        stats: PointStats | Mapping[str, Stats],
        started: float,
        ended: float,
        status: str = "completed",
    ) -> dict[str, int]:
        """`mark_point` and `commit` in one: for writers that checkpoint point by point."""
        rows = self.mark_point(point_index, parameters, stats, started, ended, status)
        await self.commit()
        return rows

    async def close(self, status: str, extra_metadata: dict[str, Any] | None = None) -> None:
        """Write what is buffered, record the final status and stop the writer thread.

        Samples of an unfinished point are kept (useful to see why a run failed); a resume
        cuts them off again. Closing twice is harmless. A writer failure already raised to the
        caller is not raised again here (the engine closes in `finally` and must go on to
        record the run's status); one nobody has seen yet is.
        """
        if self._closed or self._thread is None:
            return
        self._closed = True
        try:
            if self._error is None:
                self._hand_off_all()
                await self.drain()
        finally:
            try:
                await self._call(partial(self._finish, status, extra_metadata), always=True)
            finally:
                await self._stop_thread()
        if not self._reported:
            self._raise_if_failed()
        self._log.info("data file closed", status=status)

    def data_paths(self) -> dict[str, str]:
        """Channel -> its instrument's series (NXdata) in the file, for the links in upstream
        records; the channel is the column its name has in `value`'s `channels` attribute."""
        return {spec.name: "/" + series_group(spec.instrument) for spec in self.channels}

    # -- the loop side of the hand-off -------------------------------------------------------

    def _hand_off_all(self) -> None:
        for buffer in self._scans:
            self._hand_off(buffer)

    def _hand_off(self, buffer: ScanBuffer) -> None:
        if not buffer.count:
            return
        self._raise_if_failed()
        block = buffer.take()
        self._rows_handed[buffer.number] += block.time.shape[0]
        if self._backlog or self._handed - self._written >= self._queue_blocks:
            self._backlog.append(block)
        else:
            self._handed += 1
            self._jobs.put(block)

    def _refill(self) -> None:
        """Move backlog blocks into the queue while it has room."""
        while self._backlog and self._handed - self._written < self._queue_blocks:
            self._handed += 1
            self._jobs.put(self._backlog.popleft())

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            self._reported = True
            raise StorageError(f"{self.path}: the writer failed: {self._error}") from self._error

    async def _call(self, func: Callable[[], Any], *, always: bool = False) -> Any:
        """Run `func` on the writer thread after everything queued before it."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put(_Call(func, future, always))
        try:  # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
            async with asyncio.timeout(self._io_timeout):
                return await asyncio.wrap_future(future)
        except StorageError:
            self._reported = True
            raise
        except TimeoutError:
            raise StorageError(
                f"{self.path}: the writer did not answer within {self._io_timeout}s"
            ) from None

    async def _stop_thread(self) -> None:
        thread, self._thread = self._thread, None
        self._jobs.put(None)
        if thread is not None:
            await asyncio.to_thread(thread.join, self._io_timeout)

    # -- the writer thread -------------------------------------------------------------------

    def _finish(self, status: str, extra: dict[str, Any] | None) -> None:
        if self._error is None or isinstance(self._error, DiskNearlyFull):
            self._file.finish(status, extra)
        else:
            self._file.abandon()

    def _run(self) -> None:
        """The writer thread: blocks and calls in the order they were queued."""
        while (job := self._jobs.get()) is not None:
            if isinstance(job, ScanBlock):
                if self._error is None:
                    try:
                        self._file.append(
                            job.instrument, job.time, job.value, job.point, job.sampled
                        )
                    except Exception as exc:
                        self._fail(exc)
                self._written += 1
                if self._waiters and self._handed - self._written <= self._queue_blocks // 2:
                    self._notify(self._space.set)
                continue
            wanted = job.future.set_running_or_notify_cancel()
            try:
                if self._error is not None and not job.always:
                    raise StorageError(f"{self.path}: the writer failed: {self._error}")
                result = job.func()
            except Exception as exc:
                self._fail(exc)
                if wanted:
                    job.future.set_exception(self._as_storage_error(exc))
            else:
                if wanted:
                    job.future.set_result(result)

    def _as_storage_error(self, exc: Exception) -> Exception:
        """h5py reports disk trouble as OSError or RuntimeError; the engine sees one type."""
        if isinstance(exc, StorageError | ValueError):
            return exc
        error = StorageError(f"{self.path}: {exc}")
        error.__cause__ = exc
        return error

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
            self._log.error("data file write failed", error=str(exc))
        self._notify(self._space.set)

    def _notify(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is left to wake
            loop.call_soon_threadsafe(callback)
