"""`mdfd serve`: one long-lived process per MDF, composed from the parts of this package.

Start-up order: state database, upstream drains, instrument health monitors, loop-lag
sampling, the control API; then READY=1 and the work loop. Instruments connect in the
background; with --simulate the simulators start in the background too, and the health
monitors once they listen (ADR 0053). Shutdown (SIGTERM/SIGINT)
reverses it: STOPPING=1, the executing run is interrupted (current step stopped, safe state,
HDF5 flushed, checkpoint committed; it resumes at its first open point on the next start), the
work loop ends, then every listener, monitor and thread is closed and awaited, and the
process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

from mdfd.recipes.located import InputError

from ..clock import EngineClock
from ..config import LoadedConfig, load_config
from ..engine.events import EventBus
from ..logging import get_logger
from ..notify import Notifier, Watchdog, watchdog_interval
from ..oneshot import state_db
from ..state import StateDB
from ..summary import NO_UPSTREAM
from ..supervise import start_supervised
from ..upstream.service import UpstreamService
from ..version import software_version
from .health import HealthMonitor
from .listeners import ControlServer
from .metrics import LoopLag
from .reload import review
from .scheduler import Scheduler
from .simulated import BackgroundSimulators

STOP_TIMEOUT = 90.0


class Daemon:
    def __init__(self, config: LoadedConfig, simulate: bool) -> None:
        self.config = config
        self.simulate = simulate
        self.version = software_version()
        self.started = time.time()
        self.events = EventBus()
        self.closing = asyncio.Event()
        self.notifier = Notifier()
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._reload_task: asyncio.Task[None] | None = None
        self._reload_again = False
        self._failure: BaseException | None = None
        # Set in run(), once their resources exist.
        self.state: StateDB
        self.health: HealthMonitor
        self.lag: LoopLag
        self.scheduler: Scheduler
        self.upstream: UpstreamService

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
        log = get_logger(mdf=self.config.model.mdf.id)
        log.info("daemon starting", config=str(self.config.path), simulate=self.simulate)
        loop = asyncio.get_running_loop()
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, signal.Signals(signum).name)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        try:
            async with contextlib.AsyncExitStack() as stack:
                stack.callback(self.notifier.close)
                self.state = await stack.enter_async_context(state_db(self.config))
                self.upstream = UpstreamService(self.config, self.state)
                await self.upstream.start()
                stack.push_async_callback(lambda: self.upstream.stop())
                clock = EngineClock(self.config.model.time_scale)
                health = HealthMonitor(
                    self.config.model, clock.now, self.events, deferred=self.simulate
                )
                # Entered before the monitors, so left after them: drivers close first.
                simulators = BackgroundSimulators(self.config, health, self._simulators_failed)
                await stack.enter_async_context(simulators)
                self.health = await stack.enter_async_context(health)
                self.lag = await stack.enter_async_context(LoopLag())
                server = ControlServer(self)
                await stack.enter_async_context(server)
                stack.callback(self.closing.set)  # event streams end before the server closes
                stack.push_async_callback(self._finish_reload)
                watchdog = Watchdog(self.notifier, watchdog_interval())
                self.scheduler = Scheduler(
                    self.config,
                    self.state,
                    self.events,
                    self.health,
                    self.notifier,
                    watchdog,
                    self.upstream.record_hook,
                )
                self.notifier.ready(status="serving")
                if self.simulate:
                    simulators.start()
                log.info(
                    "daemon serving",
                    socket=str(server.socket_path),
                    simulate=self.simulate,
                    watchdog_s=watchdog.interval,
                )
                if not self.config.model.upstream.publishers:
                    log.warning(NO_UPSTREAM)
                async with watchdog:
                    code = await self._serve()
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
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
