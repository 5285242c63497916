"""Instrument health while no run holds an instrument: connect, probe, reconnect with backoff.

The daemon must tell an operator that the furnace is unplugged before a run is started on it,
and must notice when it comes back. One task per instrument owns its own driver: it connects,
identifies, then reads one channel every `PROBE_SECONDS` (published as a `Readings` of no point,
the idle instrument's latest value), each step bounded by the instrument's configured
`timeouts` (`connect` for opening, `operation` for each request); on any failure it
closes the driver, reports the instrument unavailable with the error, and retries with
exponential backoff.

A run opens its own connections (the engine's `Instruments`), so before a run starts the
instruments it uses are *lent* to it: their monitor tasks stop and close their drivers — a
serial port has one owner — and restart when the run ends. Meanwhile the health reports the
instrument as `in_run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mdfd.daemons.core.config import MdfConfig
from mdfd.daemons.core.logging import get_logger
from mdfd.daemons.core.supervise import start_supervised
from mdfd.daemons.engine.events import EventBus, InstrumentChanged, Readings
from mdfd.drivers import DriverContext, InstrumentError, Reading, driver_class

PROBE_SECONDS = 5.0
CLOSE_TIMEOUT = 5.0
STOP_RETRY_SECONDS = 1.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0

OK = "ok"
CONNECTING = "connecting"
UNAVAILABLE = "unavailable"
IN_RUN = "in_run"


@dataclass
class InstrumentHealth:
    """What `/status` shows for one instrument; `errors` counts failed connects and probes."""

    name: str
    driver: str
    state: str = CONNECTING
    identity: str = ""
    error: str = ""
    since: float = field(default_factory=time.time)
    errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class HealthMonitor:
    """Owns one monitor task per instrument not lent to a run; see the module docstring."""

    def __init__(
        self,
        config: MdfConfig,
        clock: Callable[[], float],
        events: EventBus,
        *,
        deferred: bool = False,
    ) -> None:
        """`deferred`: monitors start at `begin()`, not on entry — the daemon's after READY=1
        (ADR 0076), and with --simulate once the simulators listen, so a start-up is not a
        burst of refused connections and backoffs. Until then every instrument shows
        `connecting`."""
        self._config = config
        self._clock = clock
        self._events = events
        self.health: dict[str, InstrumentHealth] = {
            name: InstrumentHealth(name, instrument.driver)
            for name, instrument in config.instruments.items()
        }
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()  # lending and replacing never interleave
        self._begun = not deferred

    async def __aenter__(self) -> HealthMonitor:
        if self._begun:
            self._start_all()
        return self

    async def begin(self) -> None:
        """Start the deferred monitors (a no-op once begun); under the lock, so a reload's
        `replace` running meanwhile never leaves a monitor without its owner."""
        async with self._lock:
            if not self._begun:
                self._begun = True
                self._start_all()

    async def __aexit__(self, *exc: object) -> None:
        await self._stop(list(self._tasks))

    def unavailable(self, names: Iterable[str]) -> list[str]:
        """The instruments among `names` that are not known to be healthy."""
        return [n for n in names if self.health[n].state not in (OK, IN_RUN)]

    async def changed(self, within: float) -> None:
        """Wait (bounded) for any health change; callers re-check what they wait for."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._changed.wait()

    @contextlib.asynccontextmanager
    async def lent(self, names: Iterable[str]) -> AsyncIterator[None]:
        """Stop monitoring `names` (closing their drivers) for the length of a run."""
        async with self._lock:
            lent = [n for n in names if n in self.health]
            await self._stop(lent)
            for name in lent:
                self._set(name, IN_RUN)
        try:
            yield
        finally:
            async with self._lock:
                for name in lent:
                    if self._begun and name in self.health and name not in self._tasks:
                        self._set(name, CONNECTING)
                        self._start(name)

    async def replace(self, config: MdfConfig) -> None:
        """Adopt a reloaded config: restart every monitor on the new instrument definitions."""
        async with self._lock:
            await self._stop(list(self._tasks))
            self._config = config
            self.health = {
                name: InstrumentHealth(name, instrument.driver)
                for name, instrument in config.instruments.items()
            }
            if self._begun:
                self._start_all()

    def _start_all(self) -> None:
        for name in self.health:
            self._start(name)

    def _start(self, name: str) -> None:
        self._tasks[name] = start_supervised(f"health-{name}", lambda: self._monitor(name))

    async def _stop(self, names: list[str]) -> None:
        pending = {self._tasks.pop(n) for n in names if n in self._tasks}
        while pending:
            # Cancel again while any survives: a driver that swallows a cancellation (e.g.
            # through wait_for on 3.11) must not keep the daemon from stopping.
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=STOP_RETRY_SECONDS)

    def _set(self, name: str, state: str, identity: str | None = None, error: str = "") -> None:
        health = self.health[name]
        if identity is not None:
            health.identity = identity
        changed = health.state != state or health.error != error
        health.error = error
        if health.state != state:
            health.state = state
            health.since = time.time()
        if changed:
            self._changed.set()
            self._events.publish(InstrumentChanged(**health.as_dict()))

    async def _monitor(self, name: str) -> None:
        config = self._config.instruments[name]
        log = get_logger(instrument=name)
        probe = [next(iter(config.channels))]
        timeouts = config.timeouts
        backoff = BACKOFF_FIRST
        # Imported in a worker thread: asyncua or pymodbus takes a few hundred ms to import,
        # which on the event loop would hold up every control request meanwhile (ADR 0076).
        factory = await asyncio.to_thread(driver_class, config.driver)
        while True:
            driver = factory(name, config, DriverContext(clock=self._clock))
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that arrives as the inner call completes, and the monitor would never stop.
                async with asyncio.timeout(timeouts.connect):
                    await driver.connect()
                async with asyncio.timeout(timeouts.operation):
                    identity = await driver.identify()
                async with asyncio.timeout(timeouts.operation):
                    self._probed(name, await driver.read(probe))
                if self.health[name].state != OK:
                    log.info("instrument available", identity=identity)
                self._set(name, OK, identity)
                backoff = BACKOFF_FIRST
                while True:
                    await asyncio.sleep(PROBE_SECONDS)
                    async with asyncio.timeout(timeouts.operation):
                        self._probed(name, await driver.read(probe))
            except (InstrumentError, OSError, TimeoutError) as exc:
                self._failed(name, log, backoff, str(exc) or type(exc).__name__)
            except Exception as exc:
                # A driver bug or a library's surprise must not leave the instrument
                # "connecting" forever: report it with its traceback, then retry like any failure.
                log.exception("instrument check failed unexpectedly", retry_in_s=backoff)
                self._failed(name, log, backoff, f"unexpected error: {exc!r}")
            finally:
                await _close(driver, log)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _probed(self, name: str, readings: Mapping[str, Reading]) -> None:
        """The probe's value as a `Readings` of no point: what an operator sees of an idle
        instrument (the page's latest values). Numbers only, as the acquisition stores them."""
        values: dict[str, float | None] = {
            f"{name}.{channel}": float(reading.value)
            for channel, reading in readings.items()
            if isinstance(reading.value, int | float) and not isinstance(reading.value, bool)
        }
        if values:
            self._events.publish(Readings(point=None, values=values))

    def _failed(self, name: str, log: Any, backoff: float, error: str) -> None:
        self.health[name].errors += 1
        if self.health[name].state != UNAVAILABLE:
            log.warning("instrument unavailable", error=error, retry_in_s=backoff)
        self._set(name, UNAVAILABLE, error=error)


async def _close(driver: Any, log: Any) -> None:
    """Close without letting a wedged transport or a cancellation skip the next cleanup."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await asyncio.shield(driver.close())
    except Exception as exc:
        log.debug("close after failure failed", error=repr(exc))
