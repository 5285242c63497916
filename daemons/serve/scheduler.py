"""The daemon's work loop: execute waiting runs one after another, day and night.

One loop, one run at a time. Each turn it proves progress to the systemd watchdog, so a loop
that wedges (a blocking call on the event loop, a deadlock) stops the pings and gets the
service restarted. Before a run starts, the instruments it uses must be healthy; the queue
waits (head of line, order is the operator's) rather than burning a run on an unplugged
instrument. A run whose instruments fail at connect comes back as interrupted and is retried
after a short backoff once they are healthy again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from mdfd.daemons.core.config import LoadedConfig
from mdfd.daemons.core.logging import get_logger
from mdfd.daemons.core.notify import Notifier, Watchdog
from mdfd.daemons.core.supervise import start_supervised
from mdfd.daemons.engine.control import RunControl
from mdfd.daemons.engine.events import (
    Alarm,
    Event,
    EventBus,
    InterlocksUnverified,
    PointEnded,
    PointStarted,
    Readings,
    RunEnded,
    RunStarted,
    RunState,
)
from mdfd.daemons.engine.interlocks import Unverified
from mdfd.daemons.engine.runner import RecordHook, RunExecutor, RunOutcome, instruments_used
from mdfd.daemons.store import RunRow, RunStatus, StateDB, StateFull
from mdfd.recipes.located import InputError

from . import runqueue
from .controlplane import Refused
from .diskspace import space_problem
from .health import HealthMonitor
from .intake import load_and_validate

TICK_SECONDS = 1.0
RETRY_SECONDS = 5.0

IDLE = "idle"
WAITING = "waiting for instruments"
NO_SPACE = "waiting for disk space"
RUNNING = "running"
PAUSED = "paused"
ABORTING = "aborting"
STOPPING = "stopping"


@dataclass
class ActiveRun:
    """The executing run as watchers see it, kept current from the event bus."""

    run: RunRow
    control: RunControl
    executor: RunExecutor
    sequence: int = 0  # how many runs this daemon had started before this one
    point: int | None = None
    parameters: dict[str, float] = field(default_factory=dict)
    points_done: int = 0
    latest: dict[str, float | None] = field(default_factory=dict)
    remaining_wall: float | None = None
    started: RunStarted | None = None  # the run_start event, for streams opened after it

    @property
    def samples_written(self) -> int:
        acquisition = self.executor.acquisition
        return 0 if acquisition is None else acquisition.samples_written

    @property
    def instrument_errors(self) -> int:
        instruments = self.executor.instruments
        return 0 if instruments is None else instruments.errors

    @property
    def state(self) -> str:
        if self.control.abort_reason is not None:
            return ABORTING
        return PAUSED if self.control.paused else RUNNING

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.run.id,
            "recipe": self.run.recipe_name,
            "state": self.state,
            "point": self.point,
            "parameters": self.parameters,
            "points_done": self.points_done,
            "points_total": self.run.points_total,
            "latest": self.latest,
            "remaining_wall_s": self.remaining_wall,
            "data_file": self.run.data_file,
            "interlocks_unverified": [u.as_dict() for u in self.unverified()],
        }

    def unverified(self) -> list[Unverified]:
        guard = self.executor.guard
        return guard.unverified() if guard is not None else []


class Scheduler:
    def __init__(
        self,
        config: LoadedConfig,
        state: StateDB,
        events: EventBus,
        health: HealthMonitor,
        notifier: Notifier,
        watchdog: Watchdog,
        record_hook: RecordHook | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.events = events
        self.health = health
        self.notifier = notifier
        self.watchdog = watchdog
        self.record_hook = record_hook
        self.phase = IDLE
        self.waiting_for: list[str] = []
        self.storage_problem: str | None = None
        self.active: ActiveRun | None = None
        self.samples_written = 0
        self.run_instrument_errors = 0
        self.runs_executed = 0
        # `runs_executed` and the wall time when the last id-less abort was asked: the run that
        # started right after it, if it was already queued then, is not "the current run" to a
        # repeated `mdfctl abort` (ADR 0038).
        self._implicit_abort: tuple[int, float] | None = None
        self._stopping: str | None = None
        self._wake = asyncio.Event()
        self._status_text = ""
        self._tick = TICK_SECONDS
        if watchdog.interval is not None:
            self._tick = min(TICK_SECONDS, watchdog.interval / 4)

    # --- operator requests -------------------------------------------------------------

    def wake(self) -> None:
        """Something changed (submit, reorder, reload): look at the queue again now."""
        self._wake.set()

    def stop(self, reason: str) -> None:
        """Stop the current step, leave the run interrupted (resumable), run nothing else."""
        self._stopping = reason
        self.phase = STOPPING
        if self.active is not None:
            self.active.control.interrupt(reason)
        self._wake.set()

    def _require_active(self, run_id: str | None) -> ActiveRun:
        active = self.active
        if active is None:
            raise Refused("no run is executing")
        if run_id is not None and run_id != active.run.id:
            raise Refused(f"run {run_id} is not the executing run ({active.run.id})")
        return active

    async def pause(self, run_id: str | None) -> str:
        active = self._require_active(run_id)
        if active.control.paused:
            raise Refused(f"run {active.run.id} is already paused")
        active.control.pause()
        await runqueue.mark_paused(self.state, active.run.id, True)
        get_logger(run=active.run.id).info("run paused by operator (at the next step boundary)")
        self.events.publish(RunState(run=active.run.id, state=PAUSED))
        self._update_status()
        return active.run.id

    async def resume(self, run_id: str | None) -> str:
        """Continue the paused executing run — or give a held run back to the queue."""
        active = self.active
        if run_id is not None and (active is None or active.run.id != run_id):
            if await runqueue.release(self.state, run_id):
                get_logger(run=run_id).info("held run released by operator")
                self.events.publish(RunState(run=run_id, state="released"))
                self.wake()
                return run_id
            raise Refused(f"run {run_id} is neither the executing run nor held")
        active = self._require_active(run_id)
        if not active.control.paused:
            raise Refused(f"run {active.run.id} is not paused")
        active.control.resume()
        await runqueue.mark_paused(self.state, active.run.id, False)
        get_logger(run=active.run.id).info("run resumed by operator")
        self.events.publish(RunState(run=active.run.id, state=RUNNING))
        self._update_status()
        return active.run.id

    async def abort(self, run_id: str | None, reason: str = "aborted by operator") -> str:
        active = self.active
        if active is not None and run_id is None:
            # A repeated `mdfctl abort`: the run it aborted may have ended and the next queued
            # one started, which the operator never saw and never meant.
            if active.state == ABORTING:
                raise Refused(f"run {active.run.id} is already aborting; nothing else aborted")
            if self._followed_implicit_abort(active):
                raise Refused(
                    f"run {active.run.id} started after your last abort; nothing aborted "
                    f"(to abort it: mdfctl abort {active.run.id})"
                )
            self._implicit_abort = (self.runs_executed, time.time())
        if active is not None and run_id in (None, active.run.id):
            active.control.abort(reason)
            get_logger(run=active.run.id).warning("run abort requested by operator")
            self.events.publish(RunState(run=active.run.id, state=ABORTING))
            return active.run.id
        if run_id is None:
            raise Refused(
                "no run is executing: nothing aborted (a queued run is aborted by its id)"
            )
        if await runqueue.abort_waiting(self.state, run_id, reason):
            get_logger(run=run_id).warning("waiting run aborted by operator")
            self.events.publish(RunEnded(run_id=run_id, status=RunStatus.ABORTED.value))
            return run_id
        raise Refused(f"run {run_id} is neither executing nor waiting")

    def _followed_implicit_abort(self, active: ActiveRun) -> bool:
        """The next run after an id-less abort, queued before it: the operator never saw it."""
        if self._implicit_abort is None:
            return False
        runs_before, asked_at = self._implicit_abort
        return active.sequence == runs_before + 1 and active.run.created_at <= asked_at

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Until `stop()`: execute the next waiting run, or wait for one."""
        log = get_logger(mdf=self.config.model.mdf.id)
        recovered = await runqueue.recover(self.state, self.config.model.recovery)
        if recovered.died:
            log.warning("runs left running by a dead process are interrupted", runs=recovered.died)
        if recovered.held:
            log.warning(
                "runs held for an operator (recovery policy): continue each with"
                " `mdfctl resume ID`, or abort it",
                runs=recovered.held,
            )
        while self._stopping is None:
            self.watchdog.alive()
            try:
                await self._turn()
            except StateFull as exc:
                await self._wait_for_space(str(exc))
        log.info("scheduler stopped", reason=self._stopping)

    async def _turn(self) -> None:
        waiting = await runqueue.pending(self.state)
        if not waiting:
            self._set_phase(IDLE)
            await self._pause_loop(self._tick * 5, wake=True)
            return
        problem = await space_problem(self.config.model.storage.data_dir, self.state)
        if problem is not None:
            await self._wait_for_space(problem)
            return
        await self._attempt(waiting[0])

    async def _wait_for_space(self, problem: str | None) -> None:
        """Hold every run (none could write) until both disks have room, then go on."""
        log = get_logger(mdf=self.config.model.mdf.id)
        log.warning("waiting for disk space; runs are held", problem=problem)
        while problem is not None and self._stopping is None:
            self.storage_problem = problem
            self._set_phase(NO_SPACE)
            await self._pause_loop(self._tick * 5, wake=False)
            problem = await space_problem(self.config.model.storage.data_dir, self.state)
        self.storage_problem = None
        log.info("disk space is back; runs go on")

    async def _attempt(self, run: RunRow) -> None:
        config = self.config
        log = get_logger(run=run.id)
        try:
            # Off the loop: re-checked at every attempt, and a large sweep takes a while.
            name = run.recipe_path or f"run {run.id}"
            recipe = await asyncio.to_thread(load_and_validate, name, run.recipe_text, config)
        except InputError as exc:
            message = "recipe no longer fits this MDF: " + "; ".join(map(str, exc.problems))
            log.error("run cannot start", error=message)
            await self.state.set_status(run.id, RunStatus.FAILED, message)
            self.events.publish(
                RunEnded(run_id=run.id, status=RunStatus.FAILED.value, message=message)
            )
            return
        used = sorted(instruments_used(recipe, config))
        missing = self.health.unavailable(used)
        if missing:
            if self.waiting_for != missing:
                log.warning("run waits for instruments", instruments=missing)
            self.waiting_for = missing
            self._set_phase(WAITING)
            await self._pause_loop(self._tick * 5, wake=True, health=True)
            return
        self.waiting_for = []
        if not await runqueue.claim(self.state, run.id):
            return
        outcome = await self._execute(run, used)
        if outcome is not None and outcome.status is RunStatus.INTERRUPTED and not self._stopping:
            # Not our shutdown: its instruments failed at connect. Let health catch up.
            await self._pause_loop(RETRY_SECONDS, wake=False)

    async def _execute(self, run: RunRow, used: list[str]) -> RunOutcome | None:
        control = RunControl()
        if self._stopping is not None:
            control.interrupt(self._stopping)
        executor = RunExecutor(
            self.config,
            self.state,
            events=self.events,
            control=control,
            record_hook=self.record_hook,
        )
        done = (await self.state.point_counts(run.id)).done
        active = self.active = ActiveRun(
            run, control, executor, sequence=self.runs_executed, points_done=done
        )
        self._set_phase(RUNNING)
        active.started = RunStarted(
            run=run.id, recipe=run.recipe_name, points_total=run.points_total, points_done=done
        )
        self.events.publish(active.started)
        log = get_logger(run=run.id)
        log.info("run starting", resumed_at_point=done if done else None)
        outcome: RunOutcome | None = None
        try:
            with self.events.watch() as queue:
                tracker = start_supervised("run-tracker", lambda: self._track(queue))
                try:
                    async with self.health.lent(used):
                        outcome = await self._await_run(executor.execute(run))
                finally:
                    tracker.cancel()
                    await asyncio.gather(tracker, return_exceptions=True)
        except Exception as exc:  # the engine raised instead of ending the run: record it
            message = f"internal error: {exc!r}"
            log.exception("run crashed")
            await self.state.set_status(run.id, RunStatus.FAILED, message)
            self.events.publish(
                RunEnded(run_id=run.id, status=RunStatus.FAILED.value, message=message)
            )
        finally:
            self.samples_written += active.samples_written
            self.run_instrument_errors += active.instrument_errors
            self.runs_executed += 1
            self.active = None
        if outcome is not None and outcome.status is RunStatus.FAILED:
            self.events.publish(Alarm(run=run.id, message=outcome.message))
        return outcome

    async def _await_run(self, work: Any) -> RunOutcome:
        """Await the run while pinging the watchdog; on cancellation the run still cleans up."""
        task = asyncio.create_task(work, name="run")
        try:
            while not task.done():
                self.watchdog.alive()
                await asyncio.wait({task}, timeout=self._tick)
            return task.result()
        finally:
            if not task.done():
                if self.active is not None:
                    self.active.control.interrupt("daemon cancelled")
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _track(self, queue: asyncio.Queue[Event]) -> None:
        while True:
            event = await queue.get()
            active = self.active
            if active is None:
                continue
            match event:
                case PointStarted(point=point, parameters=parameters):
                    active.point = point
                    active.parameters = parameters
                    self._update_status()
                case PointEnded(points_done=done, remaining_wall=remaining):
                    active.points_done = done
                    active.remaining_wall = remaining
                case Readings(point=int(), values=values):  # the run's, not a health probe's
                    active.latest = values
                case InterlocksUnverified():
                    self._update_status()

    async def _pause_loop(self, seconds: float, *, wake: bool, health: bool = False) -> None:
        """Wait up to `seconds` in watchdog-sized ticks; a wake-up or health change ends it."""
        if wake:
            self._wake.clear()
        deadline = time.monotonic() + seconds
        while self._stopping is None and time.monotonic() < deadline:
            self.watchdog.alive()
            if health:
                await self.health.changed(self._tick)
                return
            if wake:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._tick):
                        await self._wake.wait()
                if self._wake.is_set():
                    return
            else:
                await asyncio.sleep(self._tick)

    # --- what systemd and operators see -----------------------------------------------

    def _set_phase(self, phase: str) -> None:
        if self._stopping is not None:
            phase = STOPPING
        if phase != self.phase or phase in (WAITING, NO_SPACE):
            self.phase = phase
            self._update_status()

    def status_line(self) -> str:
        active = self.active
        if active is not None:
            where = (
                f"point {active.point} of {active.run.points_total}"
                if active.point is not None
                else "starting"
            )
            params = " ".join(f"{k}={v:g}" for k, v in active.parameters.items())
            state = " (paused)" if active.control.paused else ""
            unverified = ", ".join(u.channel for u in active.unverified())
            alarm = f" — INTERLOCK UNVERIFIED: {unverified}" if unverified else ""
            return f"run {active.run.id}: {where}{state} {params}{alarm}".rstrip()
        if self.phase == WAITING:
            return f"waiting for instruments: {', '.join(self.waiting_for)}"
        if self.phase == NO_SPACE:
            return f"{NO_SPACE}: {self.storage_problem}"
        return self.phase

    def _update_status(self) -> None:
        text = self.status_line()
        if text != self._status_text:
            self._status_text = text
            self.notifier.status(text)
