"""The control API's campaign requests over the daemon's parts: show, inject, stop.

Kept apart from `operations` (which delegates here) so the campaign's checks live in one
place: a person's point is checked against the recipe the run was queued with, before it is
handed to the engine (`RunControl.inject`), which records it at its next proposal.
"""

from __future__ import annotations

import asyncio
import math

from mdfd.daemons.core.logging import get_logger
from mdfd.daemons.engine.campaignview import BestPoint, adaptive_sweep, load_summary, point_problems
from mdfd.daemons.store import RunRow, StateDB

from . import views
from .controlplane import BadPoint, NotFound, Refused
from .scheduler import ActiveRun


async def campaign(state: StateDB, run: RunRow) -> views.Campaign:
    summary = await load_summary(state, run)
    if summary is None:
        raise NotFound(f"run {run.id} is not an adaptive campaign")
    return views.Campaign(
        run=summary.run,
        objectives=summary.objectives,
        measured=summary.measured,
        failed=summary.failed,
        rejected=summary.rejected,
        pending=summary.pending,
        budget=summary.budget,
        best=[_point(b) for b in summary.best],
        trials=[
            views.CampaignTrial(
                **_point(t).model_dump(),
                feasible=t.feasible,
                best_so_far=t.best_so_far if math.isfinite(t.best_so_far) else None,
            )
            for t in summary.trials
        ],
    )


def _point(point: BestPoint) -> views.CampaignPoint:
    return views.CampaignPoint(
        trial=point.trial,
        point_index=point.point_index,
        parameters=point.parameters,
        objectives=point.objectives,
    )


async def inject(active: ActiveRun, parameters: dict[str, object]) -> views.Injected:
    sweep = await asyncio.to_thread(adaptive_sweep, active.run)
    if sweep is None:
        raise Refused(f"run {active.run.id} is not an adaptive campaign")
    problems = point_problems(sweep, parameters)
    if problems:
        raise BadPoint(problems)
    point = {name: float(value) for name, value in parameters.items()}  # type: ignore[arg-type]
    active.control.inject(point)
    get_logger(run=active.run.id).info("point injected by operator", parameters=point)
    return views.Injected(run=active.run.id, parameters=point)


async def stop(active: ActiveRun, reason: str) -> views.CampaignStopped:
    if await asyncio.to_thread(adaptive_sweep, active.run) is None:
        raise Refused(f"run {active.run.id} is not an adaptive campaign")
    active.control.finish(reason)
    get_logger(run=active.run.id).info("campaign stop requested", reason=reason)
    return views.CampaignStopped(stopped=active.run.id)
