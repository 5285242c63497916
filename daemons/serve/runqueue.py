"""The queue's policy: which runs a starting daemon holds for a person, and the operator's
changes to the queue, each one conditional statement of store/queue.py in one transaction —
so a request racing the scheduler (drop a run at the moment it starts) either wins completely
or is refused. Held runs are not in the queue: they wait for an operator (`release`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mdfd.daemons.core.config import Recovery
from mdfd.daemons.store import Origin, RunRow, RunStatus, StateDB, queue
from mdfd.daemons.store.queue import ReorderError as ReorderError


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
    died = await state.runs(RunStatus.RUNNING, RunStatus.PAUSED)
    for run in died:
        await state.set_status(run.id, RunStatus.INTERRUPTED, "process died mid-run")
    waiting = await state.runs(RunStatus.QUEUED, RunStatus.INTERRUPTED)
    held = [run for run in waiting if _to_hold(run, policy)]
    for run in held:
        who = "the daemon" if run.origin is Origin.DAEMON else "a person (mdfd run/resume)"
        reason = f" after: {run.message}" if run.message else ""
        message = (
            f"held at daemon start (executed by {who}){reason};"
            f" `mdfctl resume {run.id}` continues it"
        )
        await _hold(state, run.id, message)
    return Recovered([run.id for run in died], [run.id for run in held])


async def _hold(state: StateDB, run_id: str, message: str) -> bool:
    return await state.transaction(lambda c: queue.hold(c, run_id, message))


def _to_hold(run: RunRow, policy: Recovery) -> bool:
    if run.origin is Origin.DAEMON:
        return policy.daemon_runs == "hold" and run.status is RunStatus.INTERRUPTED
    return policy.cli_runs == "hold"


async def held(state: StateDB) -> list[RunRow]:
    return await state.runs(RunStatus.HELD)


async def release(state: StateDB, run_id: str) -> bool:
    """An operator's go for a held run: back in the queue — interrupted (first in line) if it
    had started, else queued at its old position. False when the run is not held."""
    return await state.transaction(lambda c: queue.release(c, run_id))


async def pending(state: StateDB) -> list[RunRow]:
    """Waiting runs in execution order: interrupted ones first, then the queue."""
    return await state.read(queue.pending)


async def claim(state: StateDB, run_id: str) -> bool:
    """Take a waiting run for execution; False when it was dropped or aborted meanwhile.
    From here on the daemon is the run's origin: its recovery policy is `daemon_runs`."""
    return await state.transaction(lambda c: queue.claim(c, run_id))


async def mark_paused(state: StateDB, run_id: str, paused: bool) -> None:
    """Record pause/resume of the active run without touching its start time."""
    await state.transaction(lambda c: queue.mark_paused(c, run_id, paused))


async def abort_waiting(state: StateDB, run_id: str, reason: str) -> bool:
    """Abort a run that is not executing (queued, held, or interrupted awaiting resumption)."""
    return await state.transaction(lambda c: queue.abort_waiting(c, run_id, reason))


async def drop(state: StateDB, run_id: str) -> bool:
    """Remove a queued run that never started (no points, no file): False otherwise."""
    return await state.transaction(lambda c: queue.drop(c, run_id))


async def reorder(state: StateDB, first: list[str]) -> list[str]:
    """Put the queued runs `first` at the head of the queue, in that order; the rest follow
    (ReorderError when one is not queued)."""
    return await state.transaction(lambda c: queue.reorder(c, first))
