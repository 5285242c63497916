"""The `points` table: each checkpointed point of a run, the record a resume starts from.

Functions take the connection and run on the store's thread (`StateDB.transaction`/`read`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from .. import strictjson
from .rows import PointRow, PointStatus, RecordedPoints, StatusCount, point_row


def insert(connection: sqlite3.Connection, points: Sequence[PointRow]) -> None:
    connection.executemany(
        "INSERT INTO points (run_id, point_index, status, parameters, started_at, ended_at,"
        " rows, summary, message) VALUES (:run_id, :point_index, :status, :parameters,"
        " :started_at, :ended_at, :rows, :summary, :message)",
        [
            {
                "run_id": point.run_id,
                "point_index": point.point_index,
                "status": point.status.value,
                "parameters": strictjson.dumps(point.parameters),
                "started_at": point.started_at,
                "ended_at": point.ended_at,
                "rows": strictjson.dumps(point.rows),
                "summary": strictjson.dumps(point.summary),
                "message": point.message,
            }
            for point in points
        ],
    )


def recorded(connection: sqlite3.Connection, run_id: str) -> RecordedPoints:
    """What a run's resume needs — indices and the last point's row counts — without
    parsing every point's JSON: a 20,000-point run would hold ~130 MB of it (measured)."""
    rows = connection.execute(
        "SELECT point_index, status FROM points WHERE run_id = ? ORDER BY point_index",
        (run_id,),
    ).fetchall()
    last = connection.execute(
        "SELECT rows FROM points WHERE run_id = ? ORDER BY point_index DESC LIMIT 1", (run_id,)
    ).fetchone()
    statuses = [row["status"] for row in rows]
    return RecordedPoints(
        indices=frozenset(row["point_index"] for row in rows),
        not_completed=sum(1 for status in statuses if status != PointStatus.COMPLETED.value),
        last_rows=json.loads(last["rows"]) if last else None,
        failed=sum(1 for status in statuses if status == PointStatus.FAILED.value),
    )


def of_run(connection: sqlite3.Connection, run_id: str) -> list[PointRow]:
    rows = connection.execute(
        "SELECT run_id, point_index, status, parameters, started_at, ended_at, rows, summary,"
        " message FROM points WHERE run_id = ? ORDER BY point_index",
        (run_id,),
    ).fetchall()
    return [point_row(row) for row in rows]


def count_by_status(connection: sqlite3.Connection) -> list[StatusCount]:
    """Points of every run by point status (for `/metrics`)."""
    rows = connection.execute(
        "SELECT status, COUNT(*) AS count FROM points GROUP BY status ORDER BY status"
    ).fetchall()
    return [StatusCount(row["status"], row["count"]) for row in rows]
