"""The run queue's statements: which run is next, and the operator's changes to it.

Every change is one conditional UPDATE/DELETE, so a request racing the scheduler (drop a run
at the moment it starts) either wins completely or is refused: the run is never half-dropped.
Order: interrupted runs first (they were started already and hold a half-written file), then
queued runs by `queue_position`. Held runs are not in the queue: they wait for an operator.
The policy (which runs to hold, when to claim) is serve/runqueue.py's.

Functions take the connection and run on the store's thread (`StateDB.transaction`/`read`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from .rows import Origin, RunRow, RunStatus, run_row
from .runs import RUN_COLUMNS

WAITING = (RunStatus.QUEUED.value, RunStatus.INTERRUPTED.value)
ABORTABLE = (*WAITING, RunStatus.HELD.value)


class ReorderError(ValueError):
    """The requested order names a run that is not queued."""


def pending(connection: sqlite3.Connection) -> list[RunRow]:
    """Waiting runs in execution order: interrupted ones first, then the queue."""
    rows = connection.execute(
        f"SELECT {RUN_COLUMNS} FROM runs r WHERE r.status IN (?, ?) ORDER BY"
        " CASE r.status WHEN 'interrupted' THEN 0 ELSE 1 END, r.queue_position, r.created_at",
        WAITING,
    ).fetchall()
    return [run for run in map(run_row, rows) if run is not None]


def hold(connection: sqlite3.Connection, run_id: str, message: str) -> bool:
    """Set a waiting run aside for an operator; False when it is no longer waiting."""
    changed = connection.execute(
        "UPDATE runs SET status = ?, message = ? WHERE id = ? AND status IN (?, ?)",
        (RunStatus.HELD.value, message, run_id, *WAITING),
    )
    return changed.rowcount == 1


def release(connection: sqlite3.Connection, run_id: str) -> bool:
    """A held run back in the queue — interrupted (first in line) if it had started, else
    queued at its old position. False when the run is not held."""
    changed = connection.execute(
        "UPDATE runs SET message = '', status = CASE WHEN started_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM points WHERE run_id = :id) THEN :queued"
        " ELSE :interrupted END WHERE id = :id AND status = :held",
        {
            "id": run_id,
            "queued": RunStatus.QUEUED.value,
            "interrupted": RunStatus.INTERRUPTED.value,
            "held": RunStatus.HELD.value,
        },
    )
    return changed.rowcount == 1


def claim(connection: sqlite3.Connection, run_id: str) -> bool:
    """Take a waiting run for the daemon to execute; False when it was dropped or aborted."""
    changed = connection.execute(
        "UPDATE runs SET status = ?, origin = ? WHERE id = ? AND status IN (?, ?)",
        (RunStatus.RUNNING.value, Origin.DAEMON.value, run_id, *WAITING),
    )
    return changed.rowcount == 1


def mark_paused(connection: sqlite3.Connection, run_id: str, paused: bool) -> None:
    """Pause/resume of the active run, without touching its start time."""
    new, old = (
        (RunStatus.PAUSED, RunStatus.RUNNING) if paused else (RunStatus.RUNNING, RunStatus.PAUSED)
    )
    connection.execute(
        "UPDATE runs SET status = ? WHERE id = ? AND status = ?", (new.value, run_id, old.value)
    )


def abort_waiting(connection: sqlite3.Connection, run_id: str, reason: str) -> bool:
    """Abort a run that is not executing (queued, held, or interrupted awaiting resumption)."""
    changed = connection.execute(
        "UPDATE runs SET status = ?, message = ?, ended_at = ?"
        " WHERE id = ? AND status IN (?, ?, ?)",
        (RunStatus.ABORTED.value, reason, time.time(), run_id, *ABORTABLE),
    )
    return changed.rowcount == 1


def drop(connection: sqlite3.Connection, run_id: str) -> bool:
    """Remove a queued run that never started (no points, no file): False otherwise."""
    changed = connection.execute(
        "DELETE FROM runs WHERE id = :id AND status = :queued"
        " AND NOT EXISTS (SELECT 1 FROM points WHERE run_id = :id)",
        {"id": run_id, "queued": RunStatus.QUEUED.value},
    )
    return changed.rowcount == 1


def reorder(connection: sqlite3.Connection, first: Sequence[str]) -> list[str]:
    """Put the queued runs `first` at the head of the queue, in that order; the rest follow.

    The queued runs keep the set of positions they had, only redistributed, so their order
    relative to runs outside the queue (and to runs submitted later) is unchanged.
    """
    rows = connection.execute(
        "SELECT id, queue_position FROM runs WHERE status = ? ORDER BY queue_position",
        (RunStatus.QUEUED.value,),
    ).fetchall()
    queued = [row["id"] for row in rows]
    unknown = [run_id for run_id in first if run_id not in queued]
    if unknown or len(set(first)) != len(first):
        raise ReorderError(f"not queued (or listed twice): {', '.join(unknown) or 'duplicates'}")
    order = [*first, *(run_id for run_id in queued if run_id not in first)]
    connection.executemany(
        "UPDATE runs SET queue_position = ? WHERE id = ?",
        [(row["queue_position"], run_id) for run_id, row in zip(order, rows, strict=True)],
    )
    return order
