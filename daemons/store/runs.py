"""The `runs` table: one row per run, from submission to its final status.

Functions take the connection and run on the store's thread (`StateDB.transaction`/`read`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mdfd.daemons.core import strictjson

from .rows import Origin, RunRow, RunStatus, StatusCount, run_row

# Every column a RunRow has, by name; `points_done` is counted from `points`.
RUN_COLUMNS = (
    "r.id, r.recipe_name, r.recipe_version, r.recipe_sha256, r.recipe_text, r.recipe_path,"
    " r.config_text, r.status, r.points_total,"
    " (SELECT COUNT(*) FROM points p WHERE p.run_id = r.id) AS points_done, r.queue_position,"
    " r.created_at, r.started_at, r.ended_at, r.data_file, r.identities, r.message, r.origin"
)


@dataclass(frozen=True)
class NewRun:
    """What a run is created with; the store adds its queue position and creation time."""

    run_id: str
    recipe_name: str
    recipe_version: str
    recipe_sha256: str
    recipe_text: str
    recipe_path: str
    config_text: str
    points_total: int
    status: RunStatus
    data_file: str
    origin: Origin = Origin.UNKNOWN


def insert(connection: sqlite3.Connection, run: NewRun) -> None:
    """A new run at the end of the queue."""
    connection.execute(
        "INSERT INTO runs (id, recipe_name, recipe_version, recipe_sha256, recipe_text,"
        " recipe_path, config_text, status, points_total, queue_position, created_at,"
        " data_file, origin) VALUES (:id, :recipe_name, :recipe_version, :recipe_sha256,"
        " :recipe_text, :recipe_path, :config_text, :status, :points_total,"
        " (SELECT COALESCE(MAX(queue_position), 0) + 1 FROM runs), :created_at, :data_file,"
        " :origin)",
        {
            "id": run.run_id,
            "recipe_name": run.recipe_name,
            "recipe_version": run.recipe_version,
            "recipe_sha256": run.recipe_sha256,
            "recipe_text": run.recipe_text,
            "recipe_path": run.recipe_path,
            "config_text": run.config_text,
            "status": run.status.value,
            "points_total": run.points_total,
            "created_at": time.time(),
            "data_file": run.data_file,
            "origin": run.origin.value,
        },
    )


def set_status(
    connection: sqlite3.Connection,
    run_id: str,
    status: RunStatus,
    message: str = "",
    identities: Mapping[str, str] | None = None,
) -> None:
    """The run's status and message, its start/end time stamped when it starts/ends, and the
    identities of its instruments once connected."""
    columns: dict[str, Any] = {"status": status.value, "message": message}
    if status is RunStatus.RUNNING:
        columns["started_at"] = time.time()
    if status.finished or status is RunStatus.INTERRUPTED:
        columns["ended_at"] = time.time()
    if identities is not None:
        columns["identities"] = strictjson.dumps(dict(identities))
    assignments = ", ".join(f"{name} = :{name}" for name in columns)
    connection.execute(
        f"UPDATE runs SET {assignments} WHERE id = :run_id", {**columns, "run_id": run_id}
    )


def set_origin(connection: sqlite3.Connection, run_id: str, origin: Origin) -> None:
    connection.execute("UPDATE runs SET origin = ? WHERE id = ?", (origin.value, run_id))


def select(
    connection: sqlite3.Connection, statuses: Sequence[RunStatus] = (), run_id: str | None = None
) -> list[RunRow]:
    """Runs in creation order: all, those with one of `statuses`, or the one `run_id`.
    A row that cannot be read is skipped (see `rows.run_row`)."""
    conditions = ["1"]
    args: list[str] = []
    if statuses:
        conditions.append(f"r.status IN ({','.join('?' * len(statuses))})")
        args += [status.value for status in statuses]
    if run_id is not None:
        conditions.append("r.id = ?")
        args.append(run_id)
    rows = connection.execute(
        f"SELECT {RUN_COLUMNS} FROM runs r WHERE {' AND '.join(conditions)} ORDER BY r.created_at",
        args,
    ).fetchall()
    return [run for run in map(run_row, rows) if run is not None]


def one(connection: sqlite3.Connection, run_id: str) -> RunRow | None:
    found = select(connection, run_id=run_id)
    return found[0] if found else None


def count_by_status(connection: sqlite3.Connection) -> list[StatusCount]:
    """Runs by status (for `/metrics`)."""
    rows = connection.execute(
        "SELECT status, COUNT(*) AS count FROM runs GROUP BY status ORDER BY status"
    ).fetchall()
    return [StatusCount(row["status"], row["count"]) for row in rows]
