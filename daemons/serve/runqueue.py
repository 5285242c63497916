"""The queue in the state database: which run is next, and the operator's changes to it.

Every change is one conditional UPDATE/DELETE in one transaction, so a request racing the
scheduler (drop a run at the moment it starts) either wins completely or is refused: the run is
never half-dropped. Order: interrupted runs first (they were started already and hold a
half-written file), then queued runs by `queue_position`. Held runs are not in the queue: they
wait for an operator (`release`).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from ..config import Recovery
from ..state import Origin, RunRow, RunStatus, StateDB

WAITING = (RunStatus.QUEUED.value, RunStatus.INTERRUPTED.value)
ABORTABLE = (*WAITING, RunStatus.HELD.value)


@dataclass(frozen=True)
class Recovered:
    died: list[str]  # left running/paused by a process that died: now interrupted
    held: list[str]  # set aside for an operator by the recovery policy


async def recover(state: StateDB, policy: Recovery) -> Recovered:
    """At daemon start: runs a dead process left `running`/`paused` become interrupted; then
    the policy holds the unfinished runs that must not continue unprompted.

    Held under `cli_runs: hold`: every waiting run a person executed last (and runs of unknown
    origin); under `daemon_runs: hold`: the daemon's interrupted runs. Queued runs submitted
    to the daemon are its queue and never held.
    """
    died = await state.runs(
        where="r.status IN (?, ?)", args=(RunStatus.RUNNING.value, RunStatus.PAUSED.value)
    )
    for run in died:
        await state.set_status(run.id, RunStatus.INTERRUPTED, "process died mid-run")
    waiting = await state.runs(where="r.status IN (?, ?)", args=WAITING)
    held = [run for run in waiting if _to_hold(run, policy)]
    for run in held:
        who = "the daemon" if run.origin is Origin.DAEMON else "a person (mdfd run/resume)"
        reason = f" after: {run.message}" if run.message else ""
        await _rowcount(
            state,
            "UPDATE runs SET status = ?, message = ? WHERE id = ? AND status IN (?, ?)",
            (
                RunStatus.HELD.value,
                f"held at daemon start (executed by {who}){reason};"
                f" `mdfctl resume {run.id}` continues it",
                run.id,
                *WAITING,
            ),
        )
    return Recovered([run.id for run in died], [run.id for run in held])


def _to_hold(run: RunRow, policy: Recovery) -> bool:
    if run.origin is Origin.DAEMON:
        return policy.daemon_runs == "hold" and run.status is RunStatus.INTERRUPTED
    return policy.cli_runs == "hold"


async def held(state: StateDB) -> list[RunRow]:
    return await state.runs(where="r.status = ?", args=(RunStatus.HELD.value,))


async def release(state: StateDB, run_id: str) -> bool:
    """An operator's go for a held run: back in the queue — interrupted (first in line) if it
    had started, else queued at its old position. False when the run is not held."""
    return (
        await _rowcount(
            state,
            "UPDATE runs SET message = '', status = CASE WHEN started_at IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM points WHERE run_id = ?) THEN ? ELSE ? END"
            " WHERE id = ? AND status = ?",
            (
                run_id,
                RunStatus.QUEUED.value,
                RunStatus.INTERRUPTED.value,
                run_id,
                RunStatus.HELD.value,
            ),
        )
        == 1
    )


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
    """Take a waiting run for execution; False when it was dropped or aborted meanwhile.
    From here on the daemon is the run's origin: its recovery policy is `daemon_runs`."""
    return (
        await _rowcount(
            state,
            "UPDATE runs SET status = ?, origin = ? WHERE id = ? AND status IN (?, ?)",
            (RunStatus.RUNNING.value, Origin.DAEMON.value, run_id, *WAITING),
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
    """Abort a run that is not executing (queued, held, or interrupted awaiting resumption)."""
    return (
        await _rowcount(
            state,
            "UPDATE runs SET status = ?, message = ?, ended_at = ?"
            " WHERE id = ? AND status IN (?, ?, ?)",
            (RunStatus.ABORTED.value, reason, time.time(), run_id, *ABORTABLE),
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
