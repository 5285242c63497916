"""The state database: runs, the queue and every point's checkpoint, in SQLite (WAL).

A point is complete only when its data are flushed and one transaction here records it — with
its upstream records, through `extra` — so after kill -9 or power loss the database says exactly
which points exist, and a resumed run starts at the first point not recorded.

SQLite connections are thread-bound and every call blocks, so one dedicated thread owns the
connection and the event loop only ever awaits it.

A full disk must not leave a run's status unrecorded: a small reserve file beside the database
is given up (deleted) when a status update finds the disk full, so that update still commits;
`restore_reserve` takes the space back, and tells whether there is space again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from . import strictjson
from .logging import get_logger

T = TypeVar("T")

RESERVE_BYTES = 1 << 20  # room for a few status updates once the disk is full

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    recipe_name TEXT NOT NULL,
    recipe_version TEXT NOT NULL,
    recipe_sha256 TEXT NOT NULL,
    recipe_text TEXT NOT NULL,
    recipe_path TEXT NOT NULL DEFAULT '',
    config_text TEXT NOT NULL,
    status TEXT NOT NULL,
    points_total INTEGER NOT NULL,
    queue_position REAL,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    data_file TEXT NOT NULL DEFAULT '',
    identities TEXT NOT NULL DEFAULT '{}',
    message TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL DEFAULT 'unknown'
);
CREATE TABLE IF NOT EXISTS points (
    run_id TEXT NOT NULL REFERENCES runs(id),
    point_index INTEGER NOT NULL,
    status TEXT NOT NULL,
    parameters TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL NOT NULL,
    rows TEXT NOT NULL,
    summary TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, point_index)
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status, queue_position);
"""

# Columns added after the first release: (table, column, declaration). A database created
# before gets them on open, so an upgrade never strands the queue and checkpoints it holds.
MIGRATIONS = [
    ("runs", "origin", "TEXT NOT NULL DEFAULT 'unknown'"),
]


class StateFull(Exception):
    """The state database's disk is full: nothing more can be recorded until space is freed."""


def _disk_full(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(
        exc
    )


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    HELD = "held"  # waiting for a person: set aside at daemon start, see serve.runqueue.recover
    COMPLETED_WITH_FAILURES = "completed_with_failures"  # every point ran, some failed

    @property
    def finished(self) -> bool:
        return self in (
            RunStatus.COMPLETED,
            RunStatus.COMPLETED_WITH_FAILURES,
            RunStatus.ABORTED,
            RunStatus.FAILED,
        )


class Origin(StrEnum):
    """Who executed a run last: a person at a terminal (`mdfd run`/`mdfd resume`) or the
    daemon. It decides whether a daemon starting later may resume the run unprompted."""

    CLI = "cli"
    DAEMON = "daemon"
    UNKNOWN = "unknown"  # recorded before origins were: treated like a person's run


class PointStatus(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class RunRow:
    id: str
    recipe_name: str
    recipe_version: str
    recipe_sha256: str
    recipe_text: str
    recipe_path: str
    config_text: str
    status: RunStatus
    points_total: int
    points_done: int
    queue_position: float | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    data_file: str
    identities: dict[str, str]
    message: str
    origin: Origin

    def as_dict(self, with_texts: bool = False) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if with_texts or not k.endswith("_text")}
        data["status"] = self.status.value
        data["origin"] = self.origin.value
        return data


@dataclass(frozen=True)
class PointRow:
    run_id: str
    point_index: int
    status: PointStatus
    parameters: dict[str, float]
    started_at: float
    ended_at: float
    rows: dict[str, int]
    summary: dict[str, Any]
    message: str


@dataclass(frozen=True)
class RecordedPoints:
    """A run's checkpointed points in brief: which, how many did not complete, and the row
    counts per channel of the last one (where its data file is cut back to on resume)."""

    indices: frozenset[int]
    not_completed: int
    last_rows: dict[str, int] | None
    failed: int = 0  # of `not_completed`, those failed (the others were skipped)


def _run_row(r: tuple[Any, ...]) -> RunRow | None:
    """One row, or None (with a warning) when it cannot be read: a row written by a newer
    version or damaged by hand must not hide every other run from `mdfd runs` and `GET /runs`."""
    try:
        (
            id_,
            recipe_name,
            recipe_version,
            recipe_sha256,
            recipe_text,
            recipe_path,
            config_text,
            status,
            points_total,
            points_done,
            queue_position,
            created_at,
            started_at,
            ended_at,
            data_file,
            identities,
            message,
            origin,
        ) = r  # in the order `StateStore.runs` selects
        return RunRow(
            id=id_,
            recipe_name=recipe_name,
            recipe_version=recipe_version,
            recipe_sha256=recipe_sha256,
            recipe_text=recipe_text,
            recipe_path=recipe_path,
            config_text=config_text,
            status=RunStatus(status),
            points_total=points_total,
            points_done=points_done,
            queue_position=queue_position,
            created_at=created_at,
            started_at=started_at,
            ended_at=ended_at,
            data_file=data_file,
            identities=json.loads(identities),
            message=message,
            origin=Origin(origin),
        )
    except (ValueError, TypeError) as exc:
        log = get_logger(component="state")
        log.warning("unreadable run row skipped", run=r[0], error=str(exc))
        return None


class StateDB:
    """Async facade over one SQLite connection owned by one worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mdfd-state")
        self._connection: sqlite3.Connection | None = None
        self.reserve = path.with_name(path.name + ".reserve")

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._call(self._open)
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
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.executescript(SCHEMA)
        _migrate(connection)
        self._connection = connection

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

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
        def insert(connection: sqlite3.Connection) -> None:
            position = connection.execute(
                "SELECT COALESCE(MAX(queue_position), 0) + 1 FROM runs"
            ).fetchone()[0]
            connection.execute(
                "INSERT INTO runs (id, recipe_name, recipe_version, recipe_sha256, recipe_text,"
                " recipe_path, config_text, status, points_total, queue_position, created_at,"
                " data_file, origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    recipe_name,
                    recipe_version,
                    recipe_sha256,
                    recipe_text,
                    recipe_path,
                    config_text,
                    status.value,
                    points_total,
                    position,
                    time.time(),
                    data_file,
                    origin.value,
                ),
            )

        await self.transaction(insert)

    async def set_status(
        self, run_id: str, status: RunStatus, message: str = "", **fields: Any
    ) -> None:
        columns = {"status": status.value, "message": message, **fields}
        if status is RunStatus.RUNNING:
            columns.setdefault("started_at", time.time())
        if status.finished or status is RunStatus.INTERRUPTED:
            columns.setdefault("ended_at", time.time())
        if "identities" in columns:
            columns["identities"] = strictjson.dumps(columns["identities"])
        assignments = ", ".join(f"{name} = ?" for name in columns)

        def update(connection: sqlite3.Connection) -> None:
            connection.execute(
                f"UPDATE runs SET {assignments} WHERE id = ?", (*columns.values(), run_id)
            )

        await self.transaction(update, use_reserve=True)

    async def set_origin(self, run_id: str, origin: Origin) -> None:
        """Record who executes the run from now on (see `Origin`)."""

        def update(connection: sqlite3.Connection) -> None:
            connection.execute("UPDATE runs SET origin = ? WHERE id = ?", (origin.value, run_id))

        await self.transaction(update)

    async def complete_point(
        self, point: PointRow, extra: Callable[[sqlite3.Connection], None] | None = None
    ) -> None:
        """The checkpoint: the point row and what `extra` writes commit together or not at all."""
        await self.complete_points([(point, extra)])

    async def complete_points(
        self, batch: list[tuple[PointRow, Callable[[sqlite3.Connection], None] | None]]
    ) -> None:
        """Checkpoint several points in one transaction (group commit: one fsync for all).

        Each point's row commits together with what its `extra` writes (its upstream records),
        so every point of the batch is either wholly recorded or not at all.
        """

        def insert(connection: sqlite3.Connection) -> None:
            connection.executemany(
                "INSERT INTO points (run_id, point_index, status, parameters, started_at,"
                " ended_at, rows, summary, message) VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        point.run_id,
                        point.point_index,
                        point.status.value,
                        strictjson.dumps(point.parameters),
                        point.started_at,
                        point.ended_at,
                        strictjson.dumps(point.rows),
                        strictjson.dumps(point.summary),
                        point.message,
                    )
                    for point, _ in batch
                ],
            )
            for _, extra in batch:
                if extra is not None:
                    extra(connection)

        await self.transaction(insert)

    async def recorded(self, run_id: str) -> RecordedPoints:
        """What a run's resume needs — indices and the last point's row counts — without
        parsing every point's JSON: a 20,000-point run would hold ~130 MB of it (measured)."""

        def select(connection: sqlite3.Connection) -> RecordedPoints:
            rows = connection.execute(
                "SELECT point_index, status FROM points WHERE run_id = ? ORDER BY point_index",
                (run_id,),
            ).fetchall()
            last = connection.execute(
                "SELECT rows FROM points WHERE run_id = ? ORDER BY point_index DESC LIMIT 1",
                (run_id,),
            ).fetchone()
            return RecordedPoints(
                frozenset(index for index, _ in rows),
                sum(1 for _, status in rows if status != PointStatus.COMPLETED.value),
                json.loads(last[0]) if last else None,
                sum(1 for _, status in rows if status == PointStatus.FAILED.value),
            )

        return await self._call(lambda: select(self._require()))

    async def points(self, run_id: str) -> list[PointRow]:
        def select(connection: sqlite3.Connection) -> list[PointRow]:
            rows = connection.execute(
                "SELECT run_id, point_index, status, parameters, started_at, ended_at, rows,"
                " summary, message FROM points WHERE run_id = ? ORDER BY point_index",
                (run_id,),
            ).fetchall()
            return [
                PointRow(
                    r[0],
                    r[1],
                    PointStatus(r[2]),
                    json.loads(r[3]),
                    r[4],
                    r[5],
                    json.loads(r[6]),
                    json.loads(r[7]),
                    r[8],
                )
                for r in rows
            ]

        return await self._call(lambda: select(self._require()))

    async def run(self, run_id: str) -> RunRow | None:
        found = await self.runs(where="r.id = ?", args=(run_id,))
        return found[0] if found else None

    async def runs(
        self, where: str = "1", args: tuple[Any, ...] = (), order: str = "r.created_at"
    ) -> list[RunRow]:
        query = (
            "SELECT r.id, r.recipe_name, r.recipe_version, r.recipe_sha256, r.recipe_text,"
            " r.recipe_path, r.config_text, r.status, r.points_total,"
            " (SELECT COUNT(*) FROM points p WHERE p.run_id = r.id), r.queue_position,"
            " r.created_at, r.started_at, r.ended_at, r.data_file, r.identities, r.message,"
            f" r.origin FROM runs r WHERE {where} ORDER BY {order}"
        )

        def select(connection: sqlite3.Connection) -> list[RunRow]:
            return [
                row
                for row in map(_run_row, connection.execute(query, args).fetchall())
                if row is not None
            ]

        return await self._call(lambda: select(self._require()))

    async def execute(self, statement: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A single statement for callers that own their tables (the upstream outbox)."""
        return await self._call(lambda: self._require().execute(statement, args).fetchall())


def _migrate(connection: sqlite3.Connection) -> None:
    for table, column, declaration in MIGRATIONS:
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
