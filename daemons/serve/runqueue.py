"""The queue in the state database: which run is next, and the operator's changes to it.

Every change is one conditional UPDATE/DELETE in one transaction, so a request racing the
scheduler (drop a run at the moment it starts) either wins completely or is refused: the run is
never half-dropped. Order: interrupted runs first (they were started already and hold a
half-written file), then queued runs by `queue_position`.
"""

from __future__ import annotations

import sqlite3
import time

from ..state import RunRow, RunStatus, StateDB

WAITING = (RunStatus.QUEUED.value, RunStatus.INTERRUPTED.value)


async def recover(state: StateDB) -> list[str]:
    """Runs left `running` or `paused` by a process that died: interrupted, to be resumed."""
    died = await state.runs(
        where="r.status IN (?, ?)", args=(RunStatus.RUNNING.value, RunStatus.PAUSED.value)
    )
    for run in died:
        await state.set_status(run.id, RunStatus.INTERRUPTED, "process died mid-run")
    return [run.id for run in died]


async def pending(state: StateDB) -> list[RunRow]:
    """Waiting runs in execution order: interrupted ones first, then the queue."""
    return await state.runs(
        where="r.status IN (?, ?)",
        args=WAITING,
        order="CASE r.status WHEN 'interrupted' THEN 0 ELSE 1 END, r.queue_position, r.created_at",
    )


async def _rowcount(state: StateDB, statement: str, args: tuple[object, ...]) -> int:
    def body(connection: sqlite3.Connection) -> int:
        return connection.execute(statement, args).rowcount

    return await state.transaction(body)


async def claim(state: StateDB, run_id: str) -> bool:
    """Take a waiting run for execution; False when it was dropped or aborted meanwhile."""
    return (
        await _rowcount(
            state,
            "UPDATE runs SET status = ? WHERE id = ? AND status IN (?, ?)",
            (RunStatus.RUNNING.value, run_id, *WAITING),
        )
        == 1
    )


async def mark_paused(state: StateDB, run_id: str, paused: bool) -> None:
    """Record pause/resume of the active run without touching its start time."""
    new, old = (
        (RunStatus.PAUSED, RunStatus.RUNNING) if paused else (RunStatus.RUNNING, RunStatus.PAUSED)
    )
    await _rowcount(
        state,
        "UPDATE runs SET status = ? WHERE id = ? AND status = ?",
        (new.value, run_id, old.value),
    )


async def abort_waiting(state: StateDB, run_id: str, reason: str) -> bool:
    """Abort a run that is not executing (queued, or interrupted and awaiting resumption)."""
    return (
        await _rowcount(
            state,
            "UPDATE runs SET status = ?, message = ?, ended_at = ?"
            " WHERE id = ? AND status IN (?, ?)",
            (RunStatus.ABORTED.value, reason, time.time(), run_id, *WAITING),
        )
        == 1
    )


async def drop(state: StateDB, run_id: str) -> bool:
    """Remove a queued run that never started (no points, no file): False otherwise."""
    return (
        await _rowcount(
            state,
            "DELETE FROM runs WHERE id = ? AND status = ?"
            " AND NOT EXISTS (SELECT 1 FROM points WHERE run_id = ?)",
            (run_id, RunStatus.QUEUED.value, run_id),
        )
        == 1
    )


class ReorderError(ValueError):
    """The requested order names a run that is not queued."""


async def reorder(state: StateDB, first: list[str]) -> list[str]:
    """Put the queued runs `first` at the head of the queue, in that order; the rest follow.

    The queued runs keep the set of positions they had, only redistributed, so their order
    relative to runs outside the queue (and to runs submitted later) is unchanged.
    """

    def body(connection: sqlite3.Connection) -> list[str]:
        rows = connection.execute(
            "SELECT id, queue_position FROM runs WHERE status = ? ORDER BY queue_position",
            (RunStatus.QUEUED.value,),
        ).fetchall()
        queued = [r[0] for r in rows]
        unknown = [run_id for run_id in first if run_id not in queued]
        if unknown or len(set(first)) != len(first):
            raise ReorderError(
                f"not queued (or listed twice): {', '.join(unknown) or 'duplicates'}"
            )
        order = first + [run_id for run_id in queued if run_id not in first]
        for run_id, (_, position) in zip(order, rows, strict=True):
            connection.execute(
                "UPDATE runs SET queue_position = ? WHERE id = ?", (position, run_id)
            )
        return order

    return await state.transaction(body)
