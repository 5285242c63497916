"""Group commit of point checkpoints: the engine measures on while the last points reach disk.

A durable checkpoint is two fsyncs in order — the HDF5 file, then SQLite's WAL commit — which
on a virtual disk take longer than a fast point. Waiting for them point by point makes the disk
the pace of a sweep; instead, a point that has ended is handed here and the engine goes on with
the next one. One task commits whatever has ended since its last commit: every sample and
summary row up to the newest of those points is flushed and fsynced once, then all their
completions and upstream records commit in one transaction. A point is complete — in the state
database, upstream, and to watchers (`point_end`) — only after that; a crash before it means the
point is measured again on resume, exactly like a point the crash interrupted.

Commits are paced (decision 0088): one begins when `COMMIT_INTERVAL` has passed since the last
one began, when half of `max_pending` points wait, or when somebody waits for them (`flush`,
`close`, a full queue). A commit's cost is mostly fixed — a dozen HDF5 datasets extended, two
fsyncs, two thread hand-offs — and its threads take the GIL from the measuring loop, so points
of a millisecond each committed in threes spent more time committing than measuring. A point
that ends long after the last commit (the usual case on real instruments) commits at once.
`max_pending` is bounded by memory (`PENDING_BYTES` of statistics and summary rows), so a
stalled disk stops the sweep instead of letting it run ahead, and wide points wait fewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from mdfd.daemons.store import PointRow, StateDB

from .events import EventBus, PointEnded

if TYPE_CHECKING:  # h5py is imported when a run's file is opened, off the way to READY=1
    from mdfd.daemons.storage.hdf5_writer import RunFile

MAX_PENDING_POINTS = 512
PENDING_BYTES = 32 << 20  # the statistics and summary rows of the points waiting, at most
BYTES_PER_CHANNEL = 2 * 7 * 8  # a float64 per statistic, in the snapshot and in the file's row
COMMIT_INTERVAL = 0.1  # wall seconds from one commit's start to the next, unless pressed


def pending_limit(channels: int) -> int:
    """How many ended points may wait for a commit when each has `channels` channels."""
    return max(2, min(MAX_PENDING_POINTS, PENDING_BYTES // (BYTES_PER_CHANNEL * max(channels, 1))))


@dataclass(slots=True)
class EndedPoint:
    """A measured point waiting for its commit, with what to announce once it is durable."""

    row: PointRow
    records: Callable[[sqlite3.Connection], None] | None
    event: PointEnded


class CheckpointFailed(Exception):
    """A commit failed earlier; the points ended since then are not durable."""


class Checkpointer:
    """Owns the commit task of one run; `close` commits what has ended and stops it."""

    def __init__(
        self,
        run_file: RunFile,
        state: StateDB,
        events: EventBus,
        *,
        max_pending: int | None = None,
        interval: float = COMMIT_INTERVAL,
        timeout: float = 300.0,
    ) -> None:
        self._run_file = run_file
        self._state = state
        self._events = events
        if max_pending is None:
            max_pending = pending_limit(len(run_file.channels))
        self._max_pending = max_pending
        self._interval = interval
        self._timeout = timeout
        self._ended: list[EndedPoint] = []
        self._committing = False
        self._waiting = 0  # callers waiting for a commit: it is due now
        self._last_commit = -math.inf  # loop time the last commit began
        self._wakeup = asyncio.Event()  # a point was submitted
        self._due = asyncio.Event()  # a commit is due before its interval has passed
        self._progress = asyncio.Event()  # a commit ended, well or not
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self.committed = 0  # points made durable
        self.commits = 0  # group commits it took (one HDF5 fsync + one SQLite commit each)

    def start(self) -> asyncio.Task[None]:
        """The commit task; it ends only by `close` or by raising a commit's error."""
        self._task = asyncio.create_task(self._commits(), name="mdfd-checkpoints")
        return self._task

    async def wait_for_room(self) -> None:
        """Wait while `max_pending` ended points are already waiting; raise if a commit failed.

        Awaited before the point's summary row is queued in the file, so a cancellation here
        leaves nothing half-submitted.
        """
        await self._wait_until(lambda: len(self._ended) < self._max_pending)

    def submit(self, point: EndedPoint) -> None:
        """Queue an ended point for the next commit (after `wait_for_room`)."""
        self._raise_if_failed()
        self._ended.append(point)
        self._wakeup.set()
        if len(self._ended) * 2 >= self._max_pending:
            self._due.set()

    async def flush(self) -> None:
        """Return once every submitted point is durable; raise if a commit failed."""
        await self._wait_until(lambda: not self._ended and not self._committing)

    async def close(self) -> None:
        """Commit what has ended (unless a commit already failed), then stop the task."""
        try:
            if self._task is not None and not self._task.done():
                await self.flush()
        except CheckpointFailed:
            pass
        finally:
            task, self._task = self._task, None
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise CheckpointFailed(f"checkpoint failed: {self._error}") from self._error

    async def _wait_until(self, ready: Callable[[], bool]) -> None:
        if self._error is None and ready():
            return  # the common case, without arming a timer
        self._waiting += 1
        self._due.set()
        try:
            async with asyncio.timeout(self._timeout):
                while self._error is None and not ready():
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            raise CheckpointFailed(
                f"no checkpoint committed within {self._timeout:g} s (disk stalled?)"
            ) from None
        finally:
            self._waiting -= 1
        self._raise_if_failed()

    async def _until_due(self) -> None:
        """Return when the next commit should begin: its interval has passed since the last
        one began, or it is pressed (half the room used, somebody waiting)."""
        loop = asyncio.get_running_loop()
        delay = self._last_commit + self._interval - loop.time()
        if delay <= 0 or self._waiting or len(self._ended) * 2 >= self._max_pending:
            return
        self._due.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._due.wait()

    async def _commits(self) -> None:
        log = structlog.get_logger()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._ended:
                continue
            await self._until_due()
            batch, self._ended = self._ended, []
            self._last_commit = asyncio.get_running_loop().time()
            self._committing = True
            try:
                await self._run_file.commit()
                await self._state.complete_points([(p.row, p.records) for p in batch])
            except BaseException as exc:
                self._error = exc
                raise
            finally:
                self._committing = False
                self._progress.set()
            self.committed += len(batch)
            self.commits += 1
            for point in batch:
                self._events.publish(point.event)
            log.debug("points committed", points=len(batch), last=batch[-1].row.point_index)


def both_writers(
    first: Callable[[sqlite3.Connection], None] | None,
    second: Callable[[sqlite3.Connection], None] | None,
) -> Callable[[sqlite3.Connection], None] | None:
    """Both writers in one transaction (either may be absent)."""
    if first is None or second is None:
        return first or second

    def write(connection: sqlite3.Connection) -> None:
        first(connection)
        second(connection)

    return write
