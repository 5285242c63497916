"""The state database: one SQLite file (WAL) holding runs, their points and the upstream
outbox, behind one connection owned by one thread.

A point is complete only when its data are flushed and one transaction here records it — with
its upstream records, through `extra` — so after kill -9 or power loss the database says exactly
which points exist, and a resumed run starts at the first point not recorded.

SQLite connections are thread-bound and every call blocks, so one dedicated thread owns the
connection and the event loop only ever awaits it (`transaction`, `read`).

A full disk must not leave a run's status unrecorded: a small reserve file beside the database
is given up (deleted) when a status update finds the disk full, so that update still commits;
`restore_reserve` takes the space back, and tells whether there is space again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from . import points, runs, schema
from .rows import Origin, PointCounts, PointRow, RecordedPoints, RunRow, RunStatus

T = TypeVar("T")

RESERVE_BYTES = 1 << 20  # room for a few status updates once the disk is full


class StateFull(Exception):
    """The state database's disk is full: nothing more can be recorded until space is freed."""


def _disk_full(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(
        exc
    )


Extra = Callable[[sqlite3.Connection], None]
"""What a checkpoint writes beside its point rows, in the same transaction (upstream records)."""


class StateDB:
    """Async facade over one SQLite connection owned by one worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mdfd-state")
        self._connection: sqlite3.Connection | None = None
        self.reserve = path.with_name(path.name + ".reserve")

    async def open(self) -> None:
        """Connect and migrate (see schema.py); a database that cannot be opened — from a newer
        mdfd, damaged — leaves no thread behind."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            await self._call(self._open)
        except BaseException:
            await self.close()
            raise
        with contextlib.suppress(OSError):  # a read-only look at the runs needs no reserve
            await self.restore_reserve()

    async def close(self) -> None:
        if self._connection is not None:
            await self._call(self._connection.close)
            self._connection = None
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> StateDB:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _open(self) -> None:
        self._connection = connect(self.path)

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    async def read(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run `body` on the owner thread without opening a transaction: for SELECTs."""
        return await self._call(lambda: body(self._require()))

    async def transaction(
        self, body: Callable[[sqlite3.Connection], T], *, use_reserve: bool = False
    ) -> T:
        """Run `body` inside BEGIN IMMEDIATE … COMMIT on the owner thread.

        A full disk raises StateFull; with `use_reserve` the reserve is given up first and the
        transaction tried once more (for what must be recorded: a run's status).
        """
        return await self._call(self._transaction, body, use_reserve)

    def _transaction(self, body: Callable[[sqlite3.Connection], T], use_reserve: bool) -> T:
        try:
            return self._attempt(body)
        except sqlite3.OperationalError as exc:
            if not _disk_full(exc):
                raise
            error = exc
        if use_reserve and self._release_reserve():
            try:
                return self._attempt(body)
            except sqlite3.OperationalError as exc:
                if not _disk_full(exc):
                    raise
                error = exc
        raise StateFull(f"state database {self.path}: {error}") from error

    def _attempt(self, body: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._require()
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = body(connection)
            connection.execute("COMMIT")
        except BaseException:
            # A COMMIT that failed (disk full) may leave the transaction open.
            if connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            raise
        return result

    def _release_reserve(self) -> bool:
        try:
            self.reserve.unlink()
        except FileNotFoundError:
            return False
        return True

    async def restore_reserve(self) -> bool:
        """Make sure the reserve exists; False when the disk has no room for it (still full)."""
        return await self._call(self._restore_reserve)

    def _restore_reserve(self) -> bool:
        """The reserve, written back if it was given up, and as much room again beside it:
        a disk with only the reserve's worth free is still full for a run."""
        with contextlib.suppress(FileNotFoundError):
            if self.reserve.stat().st_size >= RESERVE_BYTES:
                return self._headroom()
        partial = self.reserve.with_name(self.reserve.name + ".new")
        try:
            with partial.open("wb") as file:
                file.write(bytes(RESERVE_BYTES))
                file.flush()
                os.fsync(file.fileno())
            partial.replace(self.reserve)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink()
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return False
            raise
        return self._headroom()

    def _headroom(self) -> bool:
        stats = os.statvfs(self.path.parent)
        return stats.f_bavail * stats.f_frsize >= RESERVE_BYTES

    def _require(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError(f"state database {self.path} is not open")
        return self._connection

    async def create_run(
        self,
        *,
        run_id: str,
        recipe_name: str,
        recipe_version: str,
        recipe_sha256: str,
        recipe_text: str,
        recipe_path: str,
        config_text: str,
        points_total: int,
        status: RunStatus,
        data_file: str,
        origin: Origin = Origin.UNKNOWN,
    ) -> None:
        """A new run at the end of the queue."""
        run = runs.NewRun(
            run_id=run_id,
            recipe_name=recipe_name,
            recipe_version=recipe_version,
            recipe_sha256=recipe_sha256,
            recipe_text=recipe_text,
            recipe_path=recipe_path,
            config_text=config_text,
            points_total=points_total,
            status=status,
            data_file=data_file,
            origin=origin,
        )
        await self.transaction(lambda c: runs.insert(c, run))

    async def set_status(
        self,
        run_id: str,
        status: RunStatus,
        message: str = "",
        *,
        identities: Mapping[str, str] | None = None,
    ) -> None:
        """Recorded even on a full disk (the reserve is given up for it)."""
        await self.transaction(
            lambda c: runs.set_status(c, run_id, status, message, identities), use_reserve=True
        )

    async def set_origin(self, run_id: str, origin: Origin) -> None:
        """Record who executes the run from now on (see `Origin`)."""
        await self.transaction(lambda c: runs.set_origin(c, run_id, origin))

    async def complete_point(self, point: PointRow, extra: Extra | None = None) -> None:
        """The checkpoint: the point row and what `extra` writes commit together or not at all."""
        await self.complete_points([(point, extra)])

    async def complete_points(self, batch: Sequence[tuple[PointRow, Extra | None]]) -> None:
        """Checkpoint several points in one transaction (group commit: one fsync for all).

        Each point's row commits together with what its `extra` writes (its upstream records),
        so every point of the batch is either wholly recorded or not at all.
        """

        def insert(connection: sqlite3.Connection) -> None:
            points.insert(connection, [point for point, _ in batch])
            for _, extra in batch:
                if extra is not None:
                    extra(connection)

        await self.transaction(insert)

    async def recorded(self, run_id: str) -> RecordedPoints:
        """Which points of a run are checkpointed (what a resume skips)."""
        return await self.read(lambda c: points.recorded(c, run_id))

    async def point_counts(self, run_id: str) -> PointCounts:
        """How many points of a run are checkpointed, not completed, failed."""
        return await self.read(lambda c: points.counts(c, run_id))

    async def points(self, run_id: str) -> list[PointRow]:
        return await self.read(lambda c: points.of_run(c, run_id))

    async def run(self, run_id: str) -> RunRow | None:
        return await self.read(lambda c: runs.one(c, run_id))

    async def runs(self, *statuses: RunStatus) -> list[RunRow]:
        """Every run, or those with one of `statuses`, in creation order."""
        return await self.read(lambda c: runs.select(c, statuses))


def connect(path: Path) -> sqlite3.Connection:
    """A connection as the store uses it (WAL, full sync, rows by name), migrated to
    `schema.SCHEMA_VERSION`. A database from a newer mdfd raises `schema.SchemaTooNew`
    untouched. Blocking: call it on the thread that will own the connection."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    try:
        schema.refuse_newer(connection, path)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.row_factory = sqlite3.Row
        schema.migrate(connection, path)
    except BaseException:
        connection.close()
        raise
    return connection
