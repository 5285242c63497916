"""The `points` table: each checkpointed point of a run, the record a resume starts from.

Functions take the connection and run on the store's thread (`StateDB.transaction`/`read`).

A point's statistics (`PointStats`) are kept in the `stats` column as one binary value (schema
version 3, ADR 0087): a header line naming the format and, as JSON, the channels, then the
point's statistics table (`PointStats.table`: seven rows of little-endian float64, decision
0093). At ten thousand channels the JSON `summary` that earlier versions wrote took ~45 ms per
point to encode, in one C call holding the GIL, and ~1.4 MB; the table takes well under a
millisecond and ~0.6 MB. Older rows read as before: those of format 1 (each `Stats` field as
an array) and those written before schema version 3 (JSON in `summary`, `stats` NULL).
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Sequence

import numpy as np

from mdfd.daemons.core import strictjson
from mdfd.daemons.core.stats import COUNT_FIELDS, TABLE_ROWS, PointStats, Stats

from .rows import PointCounts, PointRow, PointStatus, RecordedPoints, StatusCount, point_row


def insert(connection: sqlite3.Connection, points: Sequence[PointRow]) -> None:
    """Many points in one statement (a group commit's); rows as tuples, in the columns' order."""
    connection.executemany(
        "INSERT INTO points (run_id, point_index, status, parameters, started_at, ended_at,"
        " rows, summary, stats, message) VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, ?)",
        [
            (
                point.run_id,
                point.point_index,
                point.status.value,
                strictjson.dumps(point.parameters),
                point.started_at,
                point.ended_at,
                strictjson.dumps(point.rows),
                pack(point.summary),
                point.message,
            )
            for point in points
        ],
    )


def recorded(connection: sqlite3.Connection, run_id: str) -> RecordedPoints:
    """What a run's resume needs — indices and the last point's row counts — without
    parsing every point's JSON: a 20,000-point run would hold ~130 MB of it (measured).
    How many completed or failed is `counts`'s answer."""
    indices = connection.execute(
        "SELECT point_index FROM points WHERE run_id = ?", (run_id,)
    ).fetchall()
    last = connection.execute(
        "SELECT rows FROM points WHERE run_id = ? ORDER BY point_index DESC LIMIT 1", (run_id,)
    ).fetchone()
    return RecordedPoints(
        indices=frozenset(row["point_index"] for row in indices),
        last_rows=json.loads(last["rows"]) if last else None,
    )


def counts(connection: sqlite3.Connection, run_id: str) -> PointCounts:
    row = connection.execute(
        "SELECT COUNT(*) AS done, COALESCE(SUM(status != ?), 0) AS not_completed,"
        " COALESCE(SUM(status = ?), 0) AS failed FROM points WHERE run_id = ?",
        (PointStatus.COMPLETED.value, PointStatus.FAILED.value, run_id),
    ).fetchone()
    return PointCounts(row["done"], row["not_completed"], row["failed"])


def of_run(connection: sqlite3.Connection, run_id: str) -> list[PointRow]:
    rows = connection.execute(
        "SELECT run_id, point_index, status, parameters, started_at, ended_at, rows, summary,"
        " stats, message FROM points WHERE run_id = ? ORDER BY point_index",
        (run_id,),
    ).fetchall()
    return [point_row(row, _summary(row)) for row in rows]


def _summary(row: sqlite3.Row) -> PointStats:
    """A point's statistics: the `stats` column, or the JSON of a row from before it."""
    if row["stats"] is not None:
        return unpack(row["stats"])
    return PointStats.from_fields(json.loads(row["summary"]))


def count_by_status(connection: sqlite3.Connection) -> list[StatusCount]:
    """Points of every run by point status (for `/metrics`)."""
    rows = connection.execute(
        "SELECT status, COUNT(*) AS count FROM points GROUP BY status ORDER BY status"
    ).fetchall()
    return [StatusCount(row["status"], row["count"]) for row in rows]


STATS_FORMAT = b"mdfd-point-stats/2"
FIELDS_FORMAT = b"mdfd-point-stats/1"
"""Rows written before decision 0093: each `Stats` field as an array, counts as int64."""


def pack(stats: PointStats) -> bytes:
    """`stats` as the `stats` column holds it (see the module's docstring): the table as it
    is, one copy, so a commit of many points spends no numpy call per field on them."""
    table = np.ascontiguousarray(stats.table, dtype="<f8")
    return b"\n".join((STATS_FORMAT, _header(stats.channels), table.tobytes()))


@functools.lru_cache(maxsize=8)
def _header(channels: tuple[str, ...]) -> bytes:
    """The header line of `pack`: the same for every point of a run, so encoded once."""
    return strictjson.dumps({"channels": list(channels)}).encode()


def unpack(blob: bytes) -> PointStats:
    """The inverse of `pack`, and the fields of rows written before it. JSON never holds a raw
    newline, so the first two lines are the format and the header, and the rest is the
    table's rows (or the fields), each `8 * channels` bytes."""
    form, header, body = blob.split(b"\n", 2)
    if form not in (STATS_FORMAT, FIELDS_FORMAT):
        raise ValueError(f"point statistics in an unknown format {form[:40]!r}")
    channels = tuple(json.loads(header)["channels"])
    width = 8 * len(channels)
    if len(body) != width * TABLE_ROWS:  # a table and the fields both have seven rows
        raise ValueError(f"point statistics of {len(body)} bytes for {len(channels)} channels")
    if form == STATS_FORMAT:
        return PointStats(channels, np.frombuffer(body, "<f8").reshape(TABLE_ROWS, -1).copy())
    columns = [
        np.frombuffer(body, "<i8" if name in COUNT_FIELDS else "<f8", len(channels), k * width)
        for k, name in enumerate(Stats.__slots__)
    ]
    return PointStats.from_arrays(channels, *columns)
