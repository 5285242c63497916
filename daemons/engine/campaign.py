"""Run an adaptive campaign: propose, record, measure, tell — one point at a time.

The order is what makes it safe to kill at any moment (decision 0078):
1. a trial is recorded `proposed` before anything moves (the first ones in their own
   transaction, every later one in the checkpoint transaction of the point whose result it
   was proposed from), and that transaction is committed before its point starts;
2. it is marked `running`, with its point index, in one small transaction;
3. its point runs; its objective values and constraint violations are computed from the
   point's samples, and marked `done` / `failed` in the point's own checkpoint, together with
   the proposals made from that result.
A resume reads the trials back and goes on from the first one not done; every new proposal is
a pure function of the seed, the trial number and the recorded history (see `proposer`), so it
is the proposal an uninterrupted campaign would have made.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from mdfd.daemons.core.stats import Stats
from mdfd.daemons.store import PointStatus, RecordedPoints
from mdfd.daemons.store import campaign as store
from mdfd.recipes.adaptive import AdaptiveSweep, MeanOfLast, Measure
from mdfd.recipes.sweeps import Point

from .checkpoint import Checkpointer
from .front import front
from .interlocks import InterlockGuard
from .proposer import as_trial, make_proposer, visible_history
from .results import Choice, Progress, RunContext
from .tails import Tails

if TYPE_CHECKING:
    from .runner import RunExecutor

# A proposer that keeps proposing points the input constraints reject is stuck; so is the run.
MAX_REJECTED_IN_A_ROW = 100


class CampaignFailed(Exception):
    """The campaign cannot go on: a failed trial under `on_failure: stop`, or an optimiser
    that proposes nothing the input constraints accept."""


class Campaign:
    def __init__(
        self,
        executor: RunExecutor,
        context: RunContext,
        sweep: AdaptiveSweep,
        guard: InterlockGuard,
        checkpointer: Checkpointer,
    ) -> None:
        self.executor = executor
        self.context = context
        self.sweep = sweep
        self.guard = guard
        self.checkpointer = checkpointer
        self.proposer = make_proposer(sweep)
        self.initial = sweep.initial_points()
        self.records: list[store.TrialRecord] = []
        self._retry: store.TrialRecord | None = None  # a failed trial to run once more
        self.wall_began = time.time()
        self.directions = [o.direction for o in sweep.objectives.values()]
        self.log = structlog.get_logger().bind(campaign=context.run_id)

    async def run(self, done: RecordedPoints, started_at: float | None) -> None:
        """Measure until the budget, a stop condition or a person ends the campaign;
        `started_at` is when the run first started (wall clock), for `max_wall_time`."""
        self.wall_began = time.time() if started_at is None else started_at
        assert self.executor.acquisition is not None
        for measure in self.sweep.measures():
            if isinstance(measure.reduce, MeanOfLast):
                self.executor.acquisition.tails.keep(measure.channel, measure.reduce.seconds)
        state = self.executor.state
        run_id = self.context.run_id
        self.records = await state.read(lambda c: store.trials(c, run_id))
        fresh = self._refill()
        if fresh:
            await state.transaction(lambda c: _record_all(c, fresh))
        rows = await state.points(run_id) if done.indices else []
        process_time = sum(row.ended_at - row.started_at for row in rows)
        progress = Progress(self.executor.clock.now(), self.sweep.budget.max_points, len(rows))
        while (reason := self._stop_reason(process_time)) is None:
            record = next((r for r in self.records if r.status in ("proposed", "running")), None)
            if record is None:
                reason = "every point of the budget was proposed"
                break
            point_index = record.point_index
            if point_index is None:
                point_index = 1 + max(
                    (r.point_index for r in self.records if r.point_index is not None),
                    default=-1,
                )
            await state.transaction(
                partial(store.mark_running, run_id=run_id, trial=record.trial, point=point_index)
            )
            record = self._replace(record, status="running", point_index=point_index)
            measured = await self.executor.measure_point(
                self.context, self.guard, point_index, record.parameters, progress
            )
            process_time += measured.ended - measured.started
            told = self._tell(record, measured.status, measured.message)
            measured = replace(measured, choice=self._choice(told))
            fresh = self._refill()
            self.log.info(
                "trial ended",
                trial=record.trial,
                status=told.status,
                objectives=list(told.objectives),
                proposed=[r.trial for r in fresh],
            )
            await self.executor.submit_point(
                self.context, self.checkpointer, measured, progress, _writer(told, fresh)
            )
            # The next point's proposal (made above) is durable before its hardware moves.
            await self.checkpointer.flush()
            if told.status == "failed" and self.sweep.on_failure == "stop":
                raise CampaignFailed(f"trial {told.trial} failed: {told.message}")
        await state.transaction(lambda c: store.drop_proposed(c, run_id))
        self.records = [
            replace(r, status="dropped") if r.status == "proposed" else r for r in self.records
        ]
        self.log.info("campaign ended", reason=reason, best=self.best())

    async def write_file(self, path: Path) -> None:
        """The campaign group of the closed run file; the trials stay in the state database
        whatever happens here, so a failure is a warning, not a failed run."""
        try:
            from .campaign_file import write_campaign  # h5py: only once a campaign ends

            await asyncio.to_thread(write_campaign, path, self.sweep, list(self.records))
        except Exception as exc:  # a copy that fails must never cost the run its status
            self.log.warning(
                "campaign not written to the data file", file=str(path), error=str(exc)
            )

    def best(self) -> list[dict[str, object]]:
        """The best feasible point (or the Pareto front), for logs and views."""
        shown = front([as_trial(r) for r in self.records], self.directions)
        names = list(self.sweep.objectives)
        return [
            {
                "trial": t.number,
                "parameters": t.parameters,
                **dict(zip(names, t.values, strict=True)),
            }
            for t in shown
        ]

    def _choice(self, told: store.TrialRecord) -> Choice:
        """What the point's record says of how it was chosen and what it gave."""
        names = list(self.sweep.objectives)
        methods = {"initial": self.sweep.initial_design.kind, "person": "person"}
        return Choice(
            told.source,
            methods.get(told.source, told.optimiser),
            told.optimiser,
            told.optimiser_version,
            told.seed,
            told.trial,
            dict(zip(names, told.objectives, strict=False)),
            as_trial(told).feasible,
        )

    def _stop_reason(self, process_time: float) -> str | None:
        budget = self.sweep.budget
        measured = sum(1 for r in self.records if r.status in ("done", "failed"))
        if measured >= budget.max_points:
            return f"budget: {measured} points measured"
        if self.executor.control.finish_reason is not None:
            return self.executor.control.finish_reason
        wall_limit = budget.max_wall_seconds()
        if wall_limit is not None and time.time() - self.wall_began >= wall_limit:
            return f"budget: max_wall_time {wall_limit:g} s since the run started"
        limit = budget.max_time_seconds()
        if limit is not None and process_time >= limit:
            return f"budget: {process_time:.0f} s of process time (max_time {limit:g} s)"
        stop = budget.stop_when
        if stop is not None:
            index = list(self.sweep.objectives).index(stop.objective)
            trials = [as_trial(r) for r in self.records]
            for trial in front(trials, self.directions):
                if stop.reached(trial.values[index]):
                    return f"stop condition: {stop.objective} reached {trial.values[index]:g}"
        return None

    def _tell(
        self, record: store.TrialRecord, status: PointStatus, message: str
    ) -> store.TrialRecord:
        """The trial's result from its point's samples, as the optimiser will be told it."""
        if status is not PointStatus.COMPLETED:
            told = self._replace(record, status="failed", message=message or status.value)
            if self.sweep.on_failure == "retry_once" and record.retry_of is None:
                self._retry = record
            return told
        assert self.executor.acquisition is not None
        acquisition = self.executor.acquisition
        stats = acquisition.stats.results()
        objectives = tuple(
            _reduce(stats, acquisition.tails, o) for o in self.sweep.objectives.values()
        )
        violations = self.sweep.input_violations(record.parameters)
        for index, constraint in self.sweep.outcome_constraints():
            value = _reduce(stats, acquisition.tails, constraint)
            violations[f"constraints[{index}]"] = constraint.violation(value)
        return self._replace(record, status="done", objectives=objectives, violations=violations)

    def _refill(self) -> list[store.TrialRecord]:
        """New trials until `batch_size` are waiting (a person's point always joins), within
        the budget; a proposal that breaks an input constraint is recorded rejected."""
        fresh: list[store.TrialRecord] = []
        rejected = 0
        control = self.executor.control
        while True:
            waiting = sum(1 for r in self.records if r.status in ("proposed", "running"))
            used = sum(1 for r in self.records if r.status != "rejected")
            if used >= self.sweep.budget.max_points:
                return fresh
            retry_of = None
            if self._retry is not None:
                point, source, retry_of = self._retry.parameters, self._retry.source, self._retry
                self._retry = None
            elif control.injected:
                point, source = control.injected.pop(0), "person"
            elif waiting < self.sweep.batch_size:
                point, source = self._propose(len(self.records)), self._source(len(self.records))
            else:
                return fresh
            record = self._new(point, source, retry_of)
            if record.status == "rejected":
                rejected += 1
                if rejected >= MAX_REJECTED_IN_A_ROW:
                    raise CampaignFailed(
                        f"{rejected} proposals in a row break the input constraints"
                    )
            else:
                rejected = 0
            self.records.append(record)
            fresh.append(record)

    def _source(self, number: int) -> store.Source:
        return "initial" if number < len(self.initial) else "optimiser"

    def _propose(self, number: int) -> Point:
        if number < len(self.initial):
            return self.initial[number]
        trials = [as_trial(r) for r in self.records]
        return self.proposer.propose(number, visible_history(trials, number, self.sweep.batch_size))

    def _new(
        self, point: Point, source: store.Source, retry_of: store.TrialRecord | None = None
    ) -> store.TrialRecord:
        violations = self.sweep.input_violations(point)
        broken = any(v > 0 for v in violations.values())
        return store.TrialRecord(
            self.context.run_id,
            len(self.records),
            "rejected" if broken else "proposed",
            source,
            self.proposer.name,
            self.proposer.version,
            self.sweep.seed,
            point,
            violations=violations,
            message="breaks an input constraint" if broken else "",
            retry_of=None if retry_of is None else retry_of.trial,
        )

    def _replace(self, record: store.TrialRecord, **changes: object) -> store.TrialRecord:
        updated = replace(record, **changes)  # type: ignore[arg-type]
        self.records[record.trial] = updated
        return updated


def _reduce(stats: dict[str, Stats], tails: Tails, measure: Measure) -> float:
    """The measure's number from the point: a statistic of all its samples, or the mean of
    its last seconds."""
    if isinstance(measure.reduce, MeanOfLast):
        return tails.mean(measure.channel)
    found = stats.get(measure.channel)
    if found is None or found.n == 0:
        return math.nan
    return float(getattr(found, measure.reduce))


def _record_all(connection: sqlite3.Connection, records: list[store.TrialRecord]) -> None:
    for record in records:
        store.record_proposal(connection, record)


def _writer(
    told: store.TrialRecord, fresh: list[store.TrialRecord]
) -> Callable[[sqlite3.Connection], None]:
    """The trial's result and the proposals made from it: one transaction with its point."""

    def write(connection: sqlite3.Connection) -> None:
        if told.status == "done":
            store.mark_done(
                connection, told.run_id, told.trial, told.objectives, told.violations or {}
            )
        else:
            store.mark_failed(connection, told.run_id, told.trial, told.message)
        _record_all(connection, fresh)

    return write
