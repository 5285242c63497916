"""`mdfd serve --simulate`: the config's simulators, started after READY=1 (ADR 0053).

A simulator stands in for an instrument, and the daemon connects to instruments in the
background anyway: the OPC-UA reactor alone spends about a second of CPU filling its standard
address space, which would otherwise be the largest part of the time to READY. So the daemon
serves its control socket first; this task then starts every simulator (concurrently) and,
once they all listen, the instrument health monitors. Meanwhile `/status` shows each
instrument `connecting`, and a run waits for its instruments as it always does.

A simulator that cannot start (its port taken since `require_simulators` checked it) ends
the daemon with that error, as it did when simulators started before READY.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mdfd.daemons.core.config import LoadedConfig
from mdfd.daemons.core.logging import get_logger
from mdfd.daemons.launch.simulation import running_simulators
from mdfd.simulators.base import simulator_class

from .health import HealthMonitor

STOP_TIMEOUT = 30.0


class BackgroundSimulators:
    """Owns the task that runs the simulators for the daemon's lifetime; see the module."""

    def __init__(
        self,
        config: LoadedConfig,
        health: HealthMonitor,
        failed: Callable[[BaseException], None],
    ) -> None:
        self._config = config
        self._health = health
        self._failed = failed
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BackgroundSimulators:
        return self

    def start(self) -> None:
        """Called once READY=1 is sent: until then the start-up has the CPU to itself."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="simulators")

    async def __aexit__(self, *exc: object) -> None:
        """Cancel the task: a start still under way is cut short, and every simulator that
        started (or began to) is stopped by `running_simulators` on the way out."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        _, pending = await asyncio.wait({task}, timeout=STOP_TIMEOUT)
        if pending:
            get_logger(component="simulators").error(
                "simulators did not stop in time", timeout_s=STOP_TIMEOUT
            )

    async def _run(self) -> None:
        try:
            # Their classes are imported in a worker thread: asyncua and pymodbus take a few
            # hundred ms, which on the event loop would hold up the first `mdfctl status`.
            await asyncio.to_thread(_import_classes, self._config)
            async with running_simulators(self._config):
                await self._health.begin()
                # Held until the daemon stops and cancels this task (see __aexit__).
                await asyncio.Event().wait()
        except Exception as exc:
            self._failed(exc)


def _import_classes(config: LoadedConfig) -> None:
    """Import the class of every simulator kind in `config` (`simulator_class` keeps them)."""
    for settings in config.model.simulators.values():
        simulator_class(settings.kind)
