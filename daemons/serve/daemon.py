"""`mdfd serve`: one long-lived process per MDF, composed from the parts of this package.

Start-up order: state database, upstream drains, instrument health monitors, loop-lag
sampling, the control API; then READY=1 and the work loop. Instruments connect in the
background; with --simulate the simulators start in the background too, and the health
monitors once they listen (ADR 0053). Shutdown (SIGTERM/SIGINT)
reverses it: STOPPING=1, the executing run is interrupted (current step stopped, safe state,
HDF5 flushed, checkpoint committed; it resumes at its first open point on the next start), the
work loop ends, then every listener, monitor and thread is closed and awaited, and the
process exits 0.

The daemon is built whole before its control API serves it; a signal during start-up waits
for it (ADR 0054).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator

from mdfd.daemons.core.clock import EngineClock
from mdfd.daemons.core.config import LoadedConfig, load_config
from mdfd.daemons.core.logging import get_logger
from mdfd.daemons.core.notify import Notifier, Watchdog, watchdog_interval
from mdfd.daemons.core.supervise import start_supervised
from mdfd.daemons.core.version import software_version
from mdfd.daemons.engine.events import EventBus
from mdfd.daemons.launch.oneshot import state_db
from mdfd.daemons.launch.summary import NO_UPSTREAM
from mdfd.daemons.serve.web.server import WebServer
from mdfd.daemons.store import StateDB
from mdfd.daemons.upstream.service import UpstreamService
from mdfd.recipes.located import InputError

from .health import HealthMonitor
from .listeners import ControlServer
from .metrics import LoopLag
from .operations import Operations
from .reload import review
from .scheduler import Scheduler
from .simulated import BackgroundSimulators

STOP_TIMEOUT = 90.0


class Daemon(Operations):
    """The running daemon. Built whole by `Daemon.built` (no attribute is set later), so
    nothing — a request, a signal — can meet a half-built one."""

    def __init__(
        self,
        config: LoadedConfig,
        simulate: bool,
        *,
        events: EventBus,
        notifier: Notifier,
        watchdog: Watchdog,
        state: StateDB,
        upstream: UpstreamService,
        health: HealthMonitor,
        lag: LoopLag,
        scheduler: Scheduler,
        simulators: BackgroundSimulators,
    ) -> None:
        self.config = config
        self.simulate = simulate
        self.version = software_version()
        self.started = time.time()
        self.events = events
        self.notifier = notifier
        self.watchdog = watchdog
        self.state = state
        self.upstream = upstream
        self.health = health
        self.lag = lag
        self.scheduler = scheduler
        self.simulators = simulators
        self._failure: BaseException | None = None
        self.closing = asyncio.Event()
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._reload_task: asyncio.Task[None] | None = None
        self._reload_again = False

    @classmethod
    @contextlib.asynccontextmanager
    async def built(cls, config: LoadedConfig, simulate: bool) -> AsyncIterator[Daemon]:
        """Start every part in order, the control API last (it serves a complete daemon);
        close them in reverse when the block ends."""
        async with contextlib.AsyncExitStack() as stack:
            notifier = Notifier()
            stack.callback(notifier.close)
            events = EventBus()
            daemon: Daemon | None = None
            state = await stack.enter_async_context(state_db(config))
            # Its drains start after READY=1 (`run`): the publishers' libraries load then.
            upstream = UpstreamService(config, state)
            # The drains in use at the end: a reload may have replaced the first ones.
            stack.push_async_callback(lambda: (daemon.upstream if daemon else upstream).stop())
            clock = EngineClock(config.model.time_scale)
            monitor = HealthMonitor(config.model, clock.now, events, deferred=True)
            # The instrument monitors begin after READY=1 (Daemon.run); with --simulate the
            # simulators start then, all at once, and the monitors once they listen. Entered
            # before the monitors, so left after them: drivers close before their simulators.
            simulators = BackgroundSimulators(
                config, monitor, lambda exc: daemon._simulators_failed(exc) if daemon else None
            )
            await stack.enter_async_context(simulators)
            health = await stack.enter_async_context(monitor)
            lag = await stack.enter_async_context(LoopLag())
            watchdog = Watchdog(notifier, watchdog_interval())
            scheduler = Scheduler(
                config, state, events, health, notifier, watchdog, upstream.record_hook
            )
            daemon = cls(
                config,
                simulate,
                events=events,
                notifier=notifier,
                watchdog=watchdog,
                state=state,
                upstream=upstream,
                health=health,
                lag=lag,
                scheduler=scheduler,
                simulators=simulators,
            )
            await stack.enter_async_context(ControlServer(daemon))
            if config.model.web is not None:
                await stack.enter_async_context(WebServer(daemon, config.model.web, config.path))
            stack.callback(daemon.closing.set)  # event streams end before the server closes
            stack.push_async_callback(daemon._finish_reload)
            yield daemon

    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason
        self._stop.set()

    def _simulators_failed(self, exc: BaseException) -> None:
        """A simulator could not start: stop, then raise its error from `run` (exit 2 or 1)."""
        self._failure = exc
        self.request_stop(f"simulators failed to start: {exc}")

    def request_reload(self) -> None:
        """SIGHUP: one reload at a time; a second SIGHUP during one runs it again after."""
        if self._reload_task is not None and not self._reload_task.done():
            self._reload_again = True
            return
        self._reload_task = start_supervised("config-reload", self._reload)

    async def run(self) -> int:
        """Serve until a stop is requested: READY=1, the watchdog, the work loop."""
        log = get_logger(mdf=self.config.model.mdf.id)
        self.notifier.ready(status="serving")
        await self.upstream.start()
        if self.simulate:
            self.simulators.start()  # then begins the monitors
        else:
            await self.health.begin()
        log.info(
            "daemon serving",
            socket=str(self.config.model.storage.control_socket),
            simulate=self.simulate,
            watchdog_s=self.watchdog.interval,
        )
        if not self.config.model.upstream.publishers:
            log.warning(NO_UPSTREAM)
        async with self.watchdog:
            code = await self._serve()
        if self._failure is not None:
            raise self._failure
        return code

    async def _serve(self) -> int:
        """Run the work loop until a stop is requested (or the loop dies), then stop it."""
        log = get_logger(mdf=self.config.model.mdf.id)
        work = start_supervised("scheduler", self.scheduler.run)
        stop = asyncio.create_task(self._stop.wait(), name="stop-request")
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            await asyncio.gather(stop, return_exceptions=True)
        reason = self._stop_reason or "work loop ended"
        self.notifier.stopping(status=f"stopping: {reason}")
        log.info("daemon stopping", reason=reason)
        self.scheduler.stop(f"daemon stopping ({reason})")
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await asyncio.shield(work)
        except TimeoutError:
            log.error("work loop did not stop in time, cancelling it", timeout_s=STOP_TIMEOUT)
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            return 1
        except Exception:
            log.exception("work loop crashed")
            return 1
        return 0 if self._stop_reason else 1

    async def _replace_upstream(self, config: LoadedConfig) -> None:
        """New publishers: stop the old drains, then start new ones on the same durable outbox.

        A run executing now keeps the old hook; its records still land in the outbox (the
        table is shared) and the new drains deliver them.
        """
        await self.upstream.stop()
        self.upstream = UpstreamService(config, self.state)
        await self.upstream.start()
        self.scheduler.record_hook = self.upstream.record_hook

    async def _finish_reload(self) -> None:
        task = self._reload_task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _reload(self) -> None:
        while True:
            self._reload_again = False
            await self._reload_once()
            if not self._reload_again:
                return

    async def _reload_once(self) -> None:
        log = get_logger(mdf=self.config.model.mdf.id, component="reload")
        self.notifier.reloading(status="reloading config")
        try:
            try:
                new = await asyncio.to_thread(load_config, self.config.path)
            except InputError as exc:
                for problem in exc.problems:
                    log.error("config reload refused: invalid config", problem=str(problem))
                return
            active = self.scheduler.active
            verdict = review(
                self.config.model,
                new.model,
                run_active=active.run.id if active else None,
                simulate=self.simulate,
            )
            if verdict.refused:
                for reason in verdict.refused:
                    log.error("config reload refused, keeping the running config", reason=reason)
                return
            self.config = new
            self.scheduler.config = new
            if verdict.instruments_changed:
                await self.health.replace(new.model)
            if verdict.upstream_changed:
                await self._replace_upstream(new)
            log.info("config reloaded", applied=verdict.applied or ["nothing changed"])
            self.scheduler.wake()
        finally:
            self.notifier.ready(status=self.scheduler.status_line())


class _StartUp:
    """Signals that arrive while the daemon is being built: remembered, then handed over."""

    def __init__(self) -> None:
        self.stop_reason = ""
        self.reload = False

    def stop(self, reason: str) -> None:
        self.stop_reason = reason

    def request_reload(self) -> None:
        self.reload = True


async def serve(config: LoadedConfig, simulate: bool) -> int:
    """`mdfd serve`: SIGTERM, SIGINT and SIGHUP are handled from the first moment. During
    start-up they are held (a reload is applied, a stop honoured, once the daemon is built);
    from then on they go to the daemon."""
    loop = asyncio.get_running_loop()
    stopping = (signal.SIGTERM, signal.SIGINT)
    start_up = _StartUp()
    for signum in stopping:
        loop.add_signal_handler(signum, start_up.stop, signal.Signals(signum).name)
    loop.add_signal_handler(signal.SIGHUP, start_up.request_reload)
    get_logger(mdf=config.model.mdf.id).info(
        "daemon starting", config=str(config.path), simulate=simulate
    )
    try:
        async with Daemon.built(config, simulate) as daemon:
            for signum in stopping:
                loop.add_signal_handler(signum, daemon.request_stop, signal.Signals(signum).name)
            loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
            if start_up.stop_reason:
                daemon.request_stop(start_up.stop_reason)
            if start_up.reload:
                daemon.request_reload()
            return await daemon.run()
    finally:
        for signum in (*stopping, signal.SIGHUP):
            loop.remove_signal_handler(signum)
