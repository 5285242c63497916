"""The daemon's side of the `ControlPlane`: each operator request, answered from its parts.

A base class of `Daemon` (which owns the parts and their lifetimes); kept apart so the daemon
module stays about start-up, signals and shutdown, and this one about what an operator can
ask. Nothing here speaks HTTP.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from mdfd.daemons.analysis.handover import far_setpoints
from mdfd.daemons.core.config import Control, LoadedConfig
from mdfd.daemons.core.logging import get_logger
from mdfd.daemons.engine.events import (
    Dropped,
    Event,
    EventBus,
    Heartbeat,
    Queued,
    QueueOrder,
    RunStarted,
)
from mdfd.daemons.launch.oneshot import create_run
from mdfd.daemons.store import Origin, RunRow, StateDB
from mdfd.daemons.upstream.service import UpstreamService
from mdfd.recipes.loader import LoadedRecipe, load_recipe
from mdfd.recipes.located import InputError

from . import campaignops, runqueue, views
from .controlplane import CURRENT, NotFound, Refused
from .health import HealthMonitor
from .metrics import LoopLag, render
from .scheduler import ActiveRun, Scheduler


class Operations:
    """Implements `controlplane.ControlPlane` over the daemon's parts (set by `Daemon`)."""

    config: LoadedConfig
    simulate: bool
    version: str
    started: float
    closing: asyncio.Event
    events: EventBus
    state: StateDB
    upstream: UpstreamService
    health: HealthMonitor
    lag: LoopLag
    scheduler: Scheduler

    @property
    def control(self) -> Control:
        return self.config.model.control

    async def status(self) -> views.Status:
        scheduler = self.scheduler
        upstream = await self.upstream.status()
        return views.Status(
            mdf=self.config.model.mdf,
            daemon=views.DaemonInfo(
                pid=os.getpid(),
                version=self.version,
                started_at=self.started,
                state=scheduler.phase,
                status=scheduler.status_line(),
                simulate=self.simulate,
                config=str(self.config.path),
            ),
            instruments={n: views.Instrument(**h.as_dict()) for n, h in self.health.health.items()},
            current=_progress(scheduler.active),
            queue=[_run(r) for r in await runqueue.pending(self.state)],
            held=[_run(r) for r in await runqueue.held(self.state)],
            upstream=views.Upstream.model_validate(upstream),
        )

    async def runs(self, status: str | None = None) -> list[views.Run]:
        rows = await self.state.runs()
        return [_run(r) for r in rows if status in (None, r.status.value)]

    async def run_detail(self, run_id: str, with_texts: bool = False) -> views.RunDetail:
        wanted = self.executing() if run_id == CURRENT else run_id
        row = await self.state.run(wanted) if wanted else None
        if row is None:
            raise NotFound(f"no run {run_id!r}")
        points = await self.state.points(row.id)
        active = self.scheduler.active
        return views.RunDetail(
            **_run(row).model_dump(),
            recipe_text=row.recipe_text if with_texts else None,
            config_text=row.config_text if with_texts else None,
            progress=_progress(active) if active and active.run.id == row.id else None,
            points=[
                views.Point(
                    index=p.point_index,
                    status=p.status.value,
                    parameters=p.parameters,
                    started_at=p.started_at,
                    ended_at=p.ended_at,
                    summary=p.summary.fields(),
                    message=p.message,
                )
                for p in points
            ],
            files=[views.FileInfo(**await asyncio.to_thread(_file_info, Path(row.data_file)))],
        )

    async def submit(
        self, recipe: LoadedRecipe, config: LoadedConfig, source: str
    ) -> views.Submitted:
        previous = await self._run_before_next()
        run = await create_run(self.state, config, recipe, origin=Origin.DAEMON)
        log = get_logger(run=run.id)
        log.info("run queued", recipe=run.recipe_name, points=run.points_total, source=source)
        warnings: list[str] = []
        if previous is not None:
            warnings = await asyncio.to_thread(_handover, previous, recipe, config)
            for warning in warnings:
                log.warning("queued run starts far from the run before it", detail=warning)
        self.events.publish(Queued(run=run.id, recipe=run.recipe_name))
        self.scheduler.wake()
        return views.Submitted(**_run(run).model_dump(), warnings=warnings)

    async def _run_before_next(self) -> RunRow | None:
        """The run a newly queued one will follow: the last waiting run, else the executing
        one."""
        waiting = await runqueue.pending(self.state)
        if waiting:
            return waiting[-1]
        active = self.scheduler.active
        return active.run if active is not None else None

    async def pause(self, run_id: str | None) -> views.Paused:
        return views.Paused(paused=await self.scheduler.pause(run_id))

    async def resume(self, run_id: str | None) -> views.Resumed:
        return views.Resumed(resumed=await self.scheduler.resume(run_id))

    async def abort(self, run_id: str | None, reason: str) -> views.Aborted:
        return views.Aborted(aborted=await self.scheduler.abort(run_id, reason))

    async def campaign(self, run_id: str) -> views.Campaign:
        wanted = self.executing() if run_id == CURRENT else run_id
        row = await self.state.run(wanted) if wanted else None
        if row is None:
            raise NotFound(f"no run {run_id!r}")
        return await campaignops.campaign(self.state, row)

    async def inject(self, run_id: str | None, parameters: dict[str, object]) -> views.Injected:
        return await campaignops.inject(self._executing(run_id), parameters)

    async def stop_campaign(self, run_id: str | None, reason: str) -> views.CampaignStopped:
        return await campaignops.stop(self._executing(run_id), reason)

    def _executing(self, run_id: str | None) -> ActiveRun:
        active = self.scheduler.active
        if active is None:
            raise Refused("no run is executing")
        if run_id is not None and run_id != active.run.id:
            raise Refused(f"run {run_id} is not the executing run ({active.run.id})")
        return active

    async def queue(self) -> list[views.Run]:
        return [_run(r) for r in await runqueue.pending(self.state)]

    async def reorder(self, order: list[str]) -> views.QueueOrder:
        try:
            new = await runqueue.reorder(self.state, order)
        except runqueue.ReorderError as exc:
            raise Refused(str(exc)) from None
        get_logger(component="api").info("queue reordered", order=new)
        self.events.publish(QueueOrder(order=new))
        self.scheduler.wake()
        return views.QueueOrder(queue=new)

    async def drop(self, run_id: str) -> views.DroppedRun:
        if await runqueue.drop(self.state, run_id):
            get_logger(run=run_id).info("queued run dropped by operator")
            self.events.publish(Dropped(run=run_id))
            return views.DroppedRun(dropped=run_id)
        if await self.state.run(run_id) is None:
            raise NotFound(f"no run {run_id!r}")
        raise Refused(
            f"run {run_id} is not queued (only queued runs can be dropped; abort the others)"
        )

    async def outbox(self) -> views.Outbox:
        return views.Outbox.model_validate(await self.upstream.report())

    async def retry_outbox(self, publisher: str | None) -> views.Requeued:
        count = await self.upstream.retry_dead_letters(publisher)
        return views.Requeued(requeued=count, publisher=publisher)

    async def metrics(self) -> str:
        return await render(
            self.state, self.scheduler, self.health, self.lag, self.started, self.upstream
        )

    def subscribe(self) -> AbstractContextManager[asyncio.Queue[Event]]:
        return self.events.watch()

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(state=self.scheduler.phase)

    def executing(self) -> str | None:
        active = self.scheduler.active
        return active.run.id if active is not None else None

    def run_started(self, run_id: str) -> RunStarted | None:
        active = self.scheduler.active
        return active.started if active is not None and active.run.id == run_id else None


def _run(row: RunRow) -> views.Run:
    return views.Run(**row.as_dict(), recipe=row.recipe_name, version=row.recipe_version)


def _progress(active: ActiveRun | None) -> views.Progress | None:
    return None if active is None else views.Progress(**active.as_dict())


def _file_info(path: Path) -> dict[str, Any]:
    """Off the event loop: a stat on a busy or network disk can take a while. A path the
    system cannot even look up (too long, a NUL) is shown as missing, with why."""
    info: dict[str, Any] = {"kind": "hdf5", "path": str(path), "exists": False, "bytes": None}
    try:
        info["path"] = str(path.resolve())
        info["bytes"] = path.stat().st_size
        info["exists"] = True
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        info["error"] = str(exc)
    return info


def _handover(previous: RunRow, following: LoadedRecipe, config: LoadedConfig) -> list[str]:
    """In a thread: the stored recipe's YAML is parsed again."""
    try:
        earlier = load_recipe(
            previous.recipe_path or f"run {previous.id}", text=previous.recipe_text
        )
    except InputError:
        return []  # it no longer validates: the scheduler will fail it, not start from it
    return [f"after run {previous.id}: {w}" for w in far_setpoints(earlier, following, config)]
