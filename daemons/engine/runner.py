"""Execute one run: every not-yet-recorded point of its recipe, each checkpointed.

The order of a run's end is deliberate: first the instruments go to the safe state (safety
before data), then the points measured so far are committed (see `checkpoint`), the data file
is closed, and the status is committed last.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from mdfd.daemons.analysis.validation import validate
from mdfd.daemons.core.clock import EngineClock, clock_kind
from mdfd.daemons.core.config import LoadedConfig
from mdfd.daemons.core.stats import PointStats
from mdfd.daemons.core.version import software_version
from mdfd.daemons.storage.errors import DiskNearlyFull
from mdfd.daemons.storage.layout import ChannelSpec, Material
from mdfd.daemons.store import (
    PointRow,
    PointStatus,
    RecordedPoints,
    RunRow,
    RunStatus,
    StateDB,
    StateFull,
)
from mdfd.drivers import InstrumentError
from mdfd.recipes.adaptive import AdaptiveSweep
from mdfd.recipes.loader import LoadedRecipe, load_recipe

from .acquisition import Acquisition
from .campaign import Campaign, CampaignFailed
from .checkpoint import Checkpointer, CheckpointFailed, EndedPoint, both_writers
from .control import RunAborted, RunControl
from .events import (
    EventBus,
    InterlocksUnverified,
    PointEnded,
    PointStarted,
    RunEnded,
    UnverifiedInterlock,
)
from .instruments import Instruments
from .interlocks import InterlockBreach, InterlockGuard, InterlockUnverifiable
from .preconditions import PreconditionTimeout, await_preconditions
from .recovery import apply_safe_state, await_instruments
from .results import Measured, PointResult, Progress, RunContext
from .steps import StabilityTimeout, StepContext, run_step

if TYPE_CHECKING:
    from mdfd.daemons.storage.hdf5_writer import RunFile

RecordHook = Callable[[PointResult], Callable[[sqlite3.Connection], None] | None]


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: RunStatus
    points_total: int
    points_done: int
    points_failed: int
    wall_seconds: float
    data_file: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "status": self.status.value}


class PointFailed(Exception):
    """The point cannot complete; the recipe's policy decides whether the run goes on."""

    def __init__(self, message: str, stop_run: bool, status: PointStatus = PointStatus.FAILED):
        self.stop_run = stop_run
        self.status = status
        super().__init__(message)


def instruments_used(recipe: LoadedRecipe, config: LoadedConfig) -> set[str]:
    channels: set[str] = set(config.model.safety.safe_state)
    channels.update(i.channel for i in config.model.safety.interlocks)
    channels.update(p.channel for p in recipe.model.preconditions)
    for step in recipe.model.steps:
        channels.update(use.channel for use in step.uses())
    used = {c.partition(".")[0] for c in channels}
    recipe_used = {c.partition(".")[0] for c in recipe.model.acquired_channels()}
    return {name for name in used if name in config.model.instruments} | recipe_used


class RunExecutor:
    def __init__(
        self,
        config: LoadedConfig,
        state: StateDB,
        *,
        events: EventBus | None = None,
        control: RunControl | None = None,
        record_hook: RecordHook | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.events = events or EventBus()
        self.control = control or RunControl()
        self.record_hook = record_hook
        self.clock = EngineClock(config.model.time_scale)
        self.acquisition: Acquisition | None = None
        self.instruments: Instruments | None = None
        self.run_file: RunFile | None = None
        self.checkpointer: Checkpointer | None = None
        self.guard: InterlockGuard | None = None
        self._instrument_failed = False  # the last point failed on an instrument
        self._log: structlog.typing.FilteringBoundLogger = structlog.get_logger()
        self.campaign: Campaign | None = None  # an adaptive recipe's

    async def execute(self, run: RunRow) -> RunOutcome:
        loop = asyncio.get_running_loop()
        wall_start = loop.time()
        structlog.contextvars.bind_contextvars(mdf=self.config.model.mdf.id, run=run.id)
        log = structlog.get_logger()
        try:
            recipe = load_recipe(run.recipe_path or f"run {run.id}", text=run.recipe_text)
            validate(recipe, self.config)
            done = await self.state.recorded(run.id)
            try:
                status, message = await self._execute(run, recipe, done)
            except StateFull as exc:
                # Even the reserve was not enough to record the end: the run stays `running`
                # in the database, which the next start recovers as interrupted.
                status, message = RunStatus.INTERRUPTED, str(exc)
                log.error("run status could not be recorded", status=status.value, error=message)
        finally:
            structlog.contextvars.unbind_contextvars("run", "point")
        counts = await self.state.point_counts(run.id)
        outcome = RunOutcome(
            run.id,
            status,
            run.points_total,
            counts.done,
            counts.not_completed,
            loop.time() - wall_start,
            run.data_file,
            message,
        )
        log.info("run ended", **{k: v for k, v in outcome.as_dict().items() if k != "run_id"})
        self.events.publish(RunEnded(**outcome.as_dict()))
        return outcome

    async def _execute(
        self, run: RunRow, recipe: LoadedRecipe, done: RecordedPoints
    ) -> tuple[RunStatus, str]:
        log = structlog.get_logger()
        # One bound logger for the run's points: the lazy proxy of `get_logger()` builds a
        # logger on every call. Run and point appear in every line, merged from the context
        # variables at log time.
        self._log = log.bind()
        instruments = Instruments(
            self.config.model, instruments_used(recipe, self.config), self.clock.now
        )
        self.instruments = instruments
        try:
            await instruments.connect()
        except (InstrumentError, OSError, TimeoutError) as exc:
            await instruments.close()
            message = f"instruments unavailable: {exc}"
            log.error("run cannot start", error=message)
            await self.state.set_status(run.id, RunStatus.INTERRUPTED, message)
            return RunStatus.INTERRUPTED, message
        safety = self.config.model.safety
        guard = self.guard = InterlockGuard(
            list(safety.interlocks),
            instruments,
            safety.unverifiable_after,
            on_change=lambda unverified: self.events.publish(
                InterlocksUnverified(
                    run=run.id,
                    unverified=[
                        UnverifiedInterlock(
                            channel=u.channel, seconds=round(u.seconds, 1), error=u.error
                        )
                        for u in unverified
                    ],
                )
            ),
        )
        run_file = self.run_file = self._run_file(run, recipe, instruments)
        resuming = bool(done.indices)
        try:
            await run_file.open(
                resume_rows=done.last_rows, resume_points=len(done.indices) if resuming else None
            )
        except Exception as exc:
            # Nothing was moved yet. A full disk leaves the run resumable (as mid-run); a run
            # that never began ends failed, with the cause (left waiting, a daemon would rerun
            # it unprompted). A resume that cannot reopen its file is raised as before: its
            # caller decides (the daemon fails it rather than retry it at the queue's head).
            await instruments.close()
            if isinstance(exc, DiskNearlyFull):
                status, message = RunStatus.INTERRUPTED, str(exc)
            elif resuming or run.started_at is not None:
                raise
            else:
                status, message = RunStatus.FAILED, f"data file cannot be opened: {exc}"
            log.error("run cannot start", error=message)
            await self.state.set_status(run.id, status, message)
            return status, message
        await self.state.set_status(run.id, RunStatus.RUNNING, identities=instruments.identities)
        context = RunContext(
            run.id,
            recipe,
            self.config,
            instruments.identities,
            run.data_file,
            run_file.data_paths(),
        )
        self.acquisition = Acquisition(run_file, instruments, self.events)
        checkpointer = self.checkpointer = Checkpointer(run_file, self.state, self.events)
        status, message = RunStatus.FAILED, ""
        try:
            status, message = await self._supervise(context, run, guard, checkpointer, done)
        finally:
            await apply_safe_state(instruments, self.config.model.safety.safe_state)
            await checkpointer.close()
            await run_file.close(status.value, {"message": message})
            if self.campaign is not None:
                await self.campaign.write_file(Path(run.data_file))
            await instruments.close()
            await self.state.set_status(run.id, status, message)
        return status, message

    def _run_file(self, run: RunRow, recipe: LoadedRecipe, instruments: Instruments) -> RunFile:
        channels = []
        for qualified in recipe.model.acquired_channels():
            instrument, _, name = qualified.partition(".")
            unit = self.config.model.instruments[instrument].channels[name].unit
            channels.append(ChannelSpec(qualified, unit))
        identity = self.config.model.mdf
        metadata = {
            "run_id": run.id,
            "mdf_id": identity.id,
            "mdf_domains": [domain.value for domain in identity.served],
            "material_domain": recipe.model.recipe.domain or "",
            "mdf_site": identity.site,
            "recipe_name": recipe.model.recipe.name,
            "recipe_version": recipe.model.recipe.version,
            "recipe_sha256": recipe.sha256,
            "recipe_text": recipe.text,
            "config_text": self.config.text,
            "instrument_identities": instruments.identities,
            "software_version": software_version(),
            "time_scale": self.config.model.time_scale,
        }
        parameters = recipe.model.sweep.parameters
        # Imported here, with h5py, when the first run's file is opened: not on the daemon's
        # way to READY=1 (ADR 0085).
        from mdfd.daemons.storage.hdf5_writer import RunFile

        return RunFile(
            Path(run.data_file),
            metadata=metadata,
            channels=channels,
            parameters=list(parameters),
            parameter_units={name: p.unit for name, p in parameters.items()},
            materials=_materials(recipe),
            clock=clock_kind(self.config.model.time_scale),
        )

    async def _supervise(
        self,
        context: RunContext,
        run: RunRow,
        guard: InterlockGuard,
        checkpointer: Checkpointer,
        done: RecordedPoints,
    ) -> tuple[RunStatus, str]:
        """Race the points against interlocks, stop requests and a failing commit.

        The losers are cancelled — except the commit task: the points measured before the
        end are committed by `_execute` once the instruments are safe.
        """
        commits = checkpointer.start()
        points = asyncio.create_task(self._points(context, run, guard, checkpointer, done))
        tripped = asyncio.create_task(guard.tripped())
        stopped = asyncio.create_task(self.control.stop_requested.wait())
        monitor = asyncio.create_task(guard.monitor())
        tasks = [points, tripped, stopped, monitor]
        try:
            await asyncio.wait(
                {points, tripped, stopped, commits}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        outcome = results[0]
        if commits.done() and not commits.cancelled():
            outcome = commits.exception() or outcome
        if guard.breach is not None:
            return RunStatus.FAILED, str(guard.breach)
        if self.control.abort_reason is not None:
            return RunStatus.ABORTED, self.control.abort_reason
        if self.control.interrupt_reason is not None:
            return RunStatus.INTERRUPTED, self.control.interrupt_reason
        if isinstance(outcome, CheckpointFailed) and outcome.__cause__ is not None:
            outcome = outcome.__cause__
        if isinstance(outcome, RunAborted):
            return RunStatus.ABORTED, str(outcome)
        if isinstance(outcome, InterlockBreach | InterlockUnverifiable):
            return RunStatus.FAILED, str(outcome)
        if isinstance(outcome, PointFailed | PreconditionTimeout | CampaignFailed):
            return RunStatus.FAILED, str(outcome)
        if isinstance(outcome, DiskNearlyFull | StateFull):
            # The file and the database are intact and resumable once space is freed.
            return RunStatus.INTERRUPTED, str(outcome)
        if isinstance(outcome, BaseException):
            structlog.get_logger().error("run crashed", error=repr(outcome))
            return RunStatus.FAILED, f"internal error: {outcome!r}"
        failed = (await self.state.point_counts(run.id)).failed
        if failed:
            # Every point ran, but not every point measured: nobody may take it for a success.
            return (
                RunStatus.COMPLETED_WITH_FAILURES,
                f"{failed} of {run.points_total} points failed",
            )
        return RunStatus.COMPLETED, ""

    async def _points(
        self,
        context: RunContext,
        run: RunRow,
        guard: InterlockGuard,
        checkpointer: Checkpointer,
        done: RecordedPoints,
    ) -> None:
        recipe = context.recipe
        assert self.instruments is not None
        # Before the first point of this execution (a resumed run waits again too).
        await await_preconditions(
            recipe.model, self.config.model, self.instruments, self.clock, self.events, run.id
        )
        if recipe.model.adaptive is not None:
            self.campaign = Campaign(self, context, recipe.model.adaptive, guard, checkpointer)
            await self.campaign.run(done, run.started_at)
            return
        sweep = recipe.model.sweep
        assert not isinstance(sweep, AdaptiveSweep)
        progress = Progress(self.clock.now(), sweep.count(), len(done.indices))
        for index, point in enumerate(sweep.each()):  # made as they are reached, not held
            if index in done.indices:
                continue
            measured = await self.measure_point(context, guard, index, point, progress)
            await self.submit_point(context, checkpointer, measured, progress)
        await checkpointer.flush()

    async def measure_point(
        self,
        context: RunContext,
        guard: InterlockGuard,
        index: int,
        point: dict[str, float],
        progress: Progress,
    ) -> Measured:
        """Run the recipe's steps at one point; its samples are in `self.acquisition`."""
        recipe = context.recipe
        assert self.acquisition is not None
        assert self.instruments is not None
        log = self._log
        await self.control.checkpoint()
        if self._instrument_failed:
            await await_instruments(self.instruments, self.config, recipe, point, log)
        structlog.contextvars.bind_contextvars(point=index)
        self.acquisition.begin_point(index, context.acquired)
        self.events.publish(
            PointStarted(
                run=context.run_id,
                point=index,
                parameters=point,
                points_total=progress.total,
                points_done=progress.done,
            )
        )
        log.info("point started", parameters=point)
        started = self.clock.now()
        ctx = StepContext(
            recipe.model,
            self.config.model,
            self.instruments,
            self.clock,
            index,
            point,
            self.acquisition,
            guard.raise_if_breached,
            log,
        )
        status, message = PointStatus.COMPLETED, ""
        self._instrument_failed = False
        try:
            for step in recipe.model.steps:
                await self.control.checkpoint()
                await run_step(step, ctx)
        except StabilityTimeout as exc:
            status, message = self._point_failure(exc, skip=exc.skip, recipe=recipe)
        except InstrumentError as exc:
            self._instrument_failed = True
            status, message = self._point_failure(exc, skip=False, recipe=recipe)
        log.info("point ended", status=status.value, message=message or None)
        return Measured(index, point, status, message, started, self.clock.now())

    async def submit_point(
        self,
        context: RunContext,
        checkpointer: Checkpointer,
        measured: Measured,
        progress: Progress,
        extra: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Queue the measured point for its checkpoint, with what `extra` writes in the same
        transaction (an adaptive campaign's trial and the proposals made from its result)."""
        progress.done += 1
        progress.measured_now += 1
        elapsed = self.clock.now() - progress.began
        remaining = elapsed / progress.measured_now * (progress.total - progress.done)
        ended_event = PointEnded(
            run=context.run_id,
            point=measured.index,
            status=measured.status.value,
            parameters=measured.point,
            points_total=progress.total,
            points_done=progress.done,
            elapsed=elapsed,
            remaining=remaining,
            remaining_wall=self.clock.wall_seconds(remaining),
            message=measured.message,
        )
        await checkpointer.wait_for_room()
        assert self.acquisition is not None
        row, records = self._ended_point(context, measured, self.acquisition.stats.snapshot())
        checkpointer.submit(EndedPoint(row, both_writers(records, extra), ended_event))

    def _point_failure(
        self, exc: Exception, *, skip: bool, recipe: LoadedRecipe
    ) -> tuple[PointStatus, str]:
        if skip:
            return PointStatus.SKIPPED, str(exc)
        if recipe.model.on_error.then == "stop_run":
            raise PointFailed(str(exc), stop_run=True) from exc
        return PointStatus.FAILED, str(exc)

    def _ended_point(
        self,
        context: RunContext,
        measured: Measured,
        stats: PointStats,
    ) -> tuple[PointRow, Callable[[sqlite3.Connection], None] | None]:
        """The point's summary row queued in the file, its checkpoint row and its records."""
        index, point, status, message, started, ended = (
            measured.index,
            measured.point,
            measured.status,
            measured.message,
            measured.started,
            measured.ended,
        )
        assert self.acquisition is not None
        assert self.run_file is not None
        rows = self.run_file.mark_point(index, point, stats, started, ended, status.value)
        records = None
        if self.record_hook and status is PointStatus.COMPLETED:
            records = self.record_hook(
                PointResult(context, index, point, stats, started, ended, status, measured.choice)
            )
        row = PointRow(context.run_id, index, status, point, started, ended, rows, stats, message)
        return row, records


def _materials(recipe: LoadedRecipe) -> list[Material]:
    """The recipe's materials for the file's NXsample, as the recipe states them."""
    materials = recipe.model.materials
    return [
        Material(section, item.code, item.value, item.unit)
        for section in ("raw_materials", "composition")
        for item in getattr(materials, section)
    ]
