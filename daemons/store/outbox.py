"""The durable outbox's statements: the tables (created by schema.py) that move records upstream.

A record enters `outbox` in the same transaction that marks its point complete. Each publisher
has its own cursor (the highest `seq` it has delivered or dead-lettered), so one that is down
holds back only itself. `seq` is AUTOINCREMENT: pruning never lets a number come back below a
cursor, which would make a publisher skip a record. A record leaves the table once every
configured publisher is past it and none holds it as a dead letter.

Every function here takes the connection and runs on the state database's own thread (inside
`StateDB.transaction`), never on the event loop.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entry:
    """One queued record as a publisher sees it: the JSON text is sent as stored."""

    seq: int
    record_id: str
    run_id: str
    body: str


@dataclass(frozen=True)
class Depth:
    publisher: str
    pending: int
    oldest_age: float | None
    dead_letters: int
    requeued: int
    delivered: int
    last_delivery_at: float | None
    last_error: str | None
    last_error_at: float | None

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DeadLetter:
    publisher: str
    seq: int
    record_id: str
    run_id: str
    reason: str
    failed_at: float
    attempts: int
    requeued: bool

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


ENQUEUE = (
    "INSERT OR IGNORE INTO outbox (record_id, run_id, point_index, created_at, body)"
    " VALUES (?,?,?,?,?)"
)


def enqueue(
    connection: sqlite3.Connection, record_id: str, run_id: str, point: int, body: str
) -> None:
    """A record, in the checkpoint transaction of its point; a resumed point's record, already
    queued, is not queued twice."""
    connection.execute(ENQUEUE, (record_id, run_id, point, time.time(), body))


def register(connection: sqlite3.Connection, publishers: Sequence[str]) -> None:
    connection.executemany(
        "INSERT OR IGNORE INTO outbox_cursors (publisher) VALUES (?)", [(p,) for p in publishers]
    )


def _entry(row: sqlite3.Row) -> Entry:
    return Entry(seq=row["seq"], record_id=row["record_id"], run_id=row["run_id"], body=row["body"])


def fetch(
    connection: sqlite3.Connection, publisher: str, limit: int, after: int | None = None
) -> list[Entry]:
    """Past the publisher's cursor, or past `after`: the last record of a batch still in flight,
    whose cursor is committed only once the receiver has acknowledged it."""
    if after is None:
        rows = connection.execute(
            "SELECT seq, record_id, run_id, body FROM outbox WHERE seq > (SELECT position FROM"
            " outbox_cursors WHERE publisher = ?) ORDER BY seq LIMIT ?",
            (publisher, limit),
        ).fetchall()
    else:
        rows = connection.execute(
            "SELECT seq, record_id, run_id, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
    return [_entry(row) for row in rows]


def fetch_requeued(connection: sqlite3.Connection, publisher: str, limit: int) -> list[Entry]:
    rows = connection.execute(
        "SELECT o.seq, o.record_id, o.run_id, o.body FROM outbox_dead d JOIN outbox o"
        " ON o.seq = d.seq WHERE d.publisher = ? AND d.requeued = 1 ORDER BY d.seq LIMIT ?",
        (publisher, limit),
    ).fetchall()
    return [_entry(row) for row in rows]


def next_batch(
    connection: sqlite3.Connection, publisher: str, limit: int, after: int | None = None
) -> tuple[list[Entry], bool]:
    """Re-queued dead letters first (an operator asked for them), then past the cursor (or
    past `after`, see `fetch`)."""
    again = fetch_requeued(connection, publisher, limit)
    if again:
        return again, True
    return fetch(connection, publisher, limit, after), False


def settle(
    connection: sqlite3.Connection,
    publisher: str,
    delivered: Sequence[Entry],
    rejected: Sequence[tuple[Entry, str]],
    *,
    from_dead: bool,
    configured: Sequence[str],
) -> None:
    """Record one batch's outcome: move the cursor (or clear re-queued dead letters), file new
    dead letters, and prune what every configured publisher is done with."""
    now = time.time()
    if from_dead:
        connection.executemany(
            "DELETE FROM outbox_dead WHERE publisher = ? AND seq = ?",
            [(publisher, e.seq) for e in delivered],
        )
        connection.executemany(
            "UPDATE outbox_dead SET requeued = 0, reason = ?, failed_at = ?,"
            " attempts = attempts + 1 WHERE publisher = ? AND seq = ?",
            [(reason, now, publisher, e.seq) for e, reason in rejected],
        )
    else:
        connection.executemany(
            "INSERT OR REPLACE INTO outbox_dead (publisher, seq, record_id, reason, failed_at)"
            " VALUES (?,?,?,?,?)",
            [(publisher, e.seq, e.record_id, reason, now) for e, reason in rejected],
        )
        last = max([e.seq for e in delivered] + [e.seq for e, _ in rejected], default=None)
        if last is not None:
            connection.execute(
                "UPDATE outbox_cursors SET position = MAX(position, ?) WHERE publisher = ?",
                (last, publisher),
            )
    if delivered:
        connection.execute(
            "UPDATE outbox_cursors SET delivered = delivered + ?, last_delivery_at = ?"
            " WHERE publisher = ?",
            (len(delivered), now, publisher),
        )
    _prune(connection, configured)


def _prune(connection: sqlite3.Connection, configured: Sequence[str]) -> None:
    if not configured:
        return
    marks = ",".join("?" * len(configured))
    floor = connection.execute(
        f"SELECT MIN(position) AS floor FROM outbox_cursors WHERE publisher IN ({marks})",
        tuple(configured),
    ).fetchone()["floor"]
    if floor:
        connection.execute(
            "DELETE FROM outbox WHERE seq <= ? AND seq NOT IN (SELECT seq FROM outbox_dead)",
            (floor,),
        )


def depths(connection: sqlite3.Connection, publishers: Sequence[str]) -> list[Depth]:
    now = time.time()
    out = []
    for name in publishers:
        cursor = connection.execute(
            "SELECT position, delivered, last_delivery_at, last_error, last_error_at"
            " FROM outbox_cursors WHERE publisher = ?",
            (name,),
        ).fetchone()
        queued = connection.execute(
            "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM outbox WHERE seq > ?",
            (cursor["position"] if cursor else 0,),
        ).fetchone()
        dead = connection.execute(
            "SELECT COUNT(*) AS dead, COALESCE(SUM(d.requeued), 0) AS requeued,"
            " MIN(CASE WHEN d.requeued THEN o.created_at END) AS oldest_requeued"
            " FROM outbox_dead d JOIN outbox o ON o.seq = d.seq WHERE d.publisher = ?",
            (name,),
        ).fetchone()
        stamps = [s for s in (queued["oldest"], dead["oldest_requeued"]) if s is not None]
        out.append(
            Depth(
                publisher=name,
                pending=queued["pending"] + dead["requeued"],
                oldest_age=now - min(stamps) if stamps else None,
                dead_letters=dead["dead"] - dead["requeued"],
                requeued=dead["requeued"],
                delivered=cursor["delivered"] if cursor else 0,
                last_delivery_at=cursor["last_delivery_at"] if cursor else None,
                last_error=cursor["last_error"] if cursor else None,
                last_error_at=cursor["last_error_at"] if cursor else None,
            )
        )
    return out


def note_error(connection: sqlite3.Connection, publisher: str, error: str) -> None:
    connection.execute(
        "UPDATE outbox_cursors SET last_error = ?, last_error_at = ? WHERE publisher = ?",
        (error, time.time(), publisher),
    )


def dead_letters(
    connection: sqlite3.Connection, publisher: str | None = None, limit: int = 100
) -> list[DeadLetter]:
    rows = connection.execute(
        "SELECT d.publisher, d.seq, d.record_id, o.run_id, d.reason, d.failed_at, d.attempts,"
        " d.requeued FROM outbox_dead d JOIN outbox o ON o.seq = d.seq"
        " WHERE ? IS NULL OR d.publisher = ? ORDER BY d.failed_at DESC LIMIT ?",
        (publisher, publisher, limit),
    ).fetchall()
    return [
        DeadLetter(
            publisher=row["publisher"],
            seq=row["seq"],
            record_id=row["record_id"],
            run_id=row["run_id"],
            reason=row["reason"],
            failed_at=row["failed_at"],
            attempts=row["attempts"],
            requeued=bool(row["requeued"]),
        )
        for row in rows
    ]


def requeue(connection: sqlite3.Connection, publisher: str | None = None) -> int:
    """Mark dead letters for another attempt; their publisher's drain picks them up first."""
    return connection.execute(
        "UPDATE outbox_dead SET requeued = 1 WHERE requeued = 0 AND (? IS NULL OR publisher = ?)",
        (publisher, publisher),
    ).rowcount
