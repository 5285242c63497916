"""`/metrics` in the Prometheus text exposition format (version 0.0.4), and loop-lag sampling.

Counters that must survive restarts (points done, runs by status) come from the state
database; counters of this process (samples written, instrument errors) start at zero with it,
which Prometheus' `rate()` handles as a counter reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from mdfd.daemons.core.supervise import start_supervised
from mdfd.daemons.store import StateDB
from mdfd.daemons.store import points as stored_points
from mdfd.daemons.store import runs as stored_runs
from mdfd.daemons.upstream.service import UpstreamService

from .health import OK, HealthMonitor
from .scheduler import Scheduler

LAG_PERIOD_SECONDS = 0.5


class LoopLag:
    """How late the event loop wakes a sleeper: a blocked loop shows here before anywhere."""

    def __init__(self) -> None:
        self.last = 0.0
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLag:
        self._task = start_supervised("loop-lag", self._run)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await asyncio.sleep(LAG_PERIOD_SECONDS)
            self.last = max(0.0, loop.time() - began - LAG_PERIOD_SECONDS)
            self.worst = max(self.worst, self.last)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(
        self, name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{label_text}}} {value}" if labels else f"{name} {value}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


async def render(
    state: StateDB,
    scheduler: Scheduler,
    health: HealthMonitor,
    lag: LoopLag,
    started: float,
    upstream: UpstreamService,
) -> str:
    mdf = scheduler.config.model.mdf.id
    base = {"mdf": mdf}
    out = Exposition()
    points = await state.read(stored_points.count_by_status)
    out.metric(
        "mdfd_points_total",
        "counter",
        "Points checkpointed in the state database, by point status.",
        [({**base, "status": p.status}, p.count) for p in points] or [(base, 0)],
    )
    runs = await state.read(stored_runs.count_by_status)
    out.metric(
        "mdfd_runs",
        "gauge",
        "Runs in the state database, by run status.",
        [({**base, "status": r.status}, r.count) for r in runs] or [(base, 0)],
    )
    out.metric(
        "mdfd_samples_written_total",
        "counter",
        "Samples written to HDF5 by this process.",
        [(base, scheduler.samples_written + _current_samples(scheduler))],
    )
    monitor = [
        ({**base, "instrument": name, "source": "monitor"}, float(h.errors))
        for name, h in health.health.items()
    ]
    run_errors = scheduler.run_instrument_errors + _current_errors(scheduler)
    out.metric(
        "mdfd_instrument_errors_total",
        "counter",
        "Instrument errors: failed connects/probes by the health monitor, and in runs.",
        [*monitor, ({**base, "instrument": "", "source": "run"}, float(run_errors))],
    )
    out.metric(
        "mdfd_instrument_up",
        "gauge",
        "1 when the instrument is healthy or in use by a run.",
        [
            ({**base, "instrument": name}, 1.0 if h.state in (OK, "in_run") else 0.0)
            for name, h in health.health.items()
        ],
    )
    depths = await upstream.depth()
    out.metric(
        "mdfd_upstream_outbox_depth",
        "gauge",
        "Upstream records not yet delivered, per publisher.",
        [({**base, "publisher": d.publisher}, float(d.pending)) for d in depths],
    )
    out.metric(
        "mdfd_upstream_dead_letters",
        "gauge",
        "Upstream records refused by a publisher and parked, per publisher.",
        [({**base, "publisher": d.publisher}, float(d.dead_letters)) for d in depths],
    )
    out.metric(
        "mdfd_event_loop_lag_seconds",
        "gauge",
        "How late the event loop woke its last sleeper.",
        [(base, lag.last)],
    )
    out.metric(
        "mdfd_event_loop_lag_max_seconds",
        "gauge",
        "Worst event-loop lag since the daemon started.",
        [(base, lag.worst)],
    )
    out.metric(
        "mdfd_run_active",
        "gauge",
        "1 while a run executes (paused included).",
        [(base, 1.0 if scheduler.active is not None else 0.0)],
    )
    unverified = scheduler.active.unverified() if scheduler.active is not None else []
    out.metric(
        "mdfd_interlocks_unverified",
        "gauge",
        "Interlocked channels the running run failed to read at its last poll (a safety alarm).",
        [(base, float(len(unverified)))],
    )
    out.metric(
        "mdfd_interlock_unverified_seconds",
        "gauge",
        "How long each unverified interlocked channel has gone unread (wall seconds).",
        [({**base, "channel": u.channel}, u.seconds) for u in unverified],
    )
    out.metric(
        "mdfd_storage_full",
        "gauge",
        "1 while runs are held because the data or state disk has no room.",
        [(base, 1.0 if scheduler.storage_problem else 0.0)],
    )
    out.metric(
        "mdfd_start_time_seconds",
        "gauge",
        "Unix time the daemon started.",
        [(base, started)],
    )
    out.metric(
        "mdfd_scrape_time_seconds", "gauge", "Unix time of this scrape.", [(base, time.time())]
    )
    return out.text()


def _current_samples(scheduler: Scheduler) -> int:
    active = scheduler.active
    return 0 if active is None else active.samples_written


def _current_errors(scheduler: Scheduler) -> int:
    active = scheduler.active
    return 0 if active is None else active.instrument_errors
