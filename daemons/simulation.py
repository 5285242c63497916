"""Start the simulators a config declares, all in one process around one shared world."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from mdfd.recipes.located import InputError, Problem
from mdfd.simulators.base import Simulator, simulator_class
from mdfd.simulators.clock import ScaledClock
from mdfd.simulators.world import World

from .config import LoadedConfig, MdfConfig
from .logging import get_logger


class SimulatorStartError(RuntimeError):
    """A simulator could not bind its endpoints (a port in use, a bad host)."""


@contextlib.asynccontextmanager
async def running_simulators(config: MdfConfig) -> AsyncIterator[dict[str, Simulator]]:
    """Start every simulator of `config`; stop them all on exit, whatever happened."""
    simulation = config.simulation
    scale = simulation.time_scale if simulation else 1.0
    world = World(ScaledClock(scale), seed=simulation.seed if simulation else 0)
    log = get_logger(mdf=config.mdf.id)
    started: dict[str, Simulator] = {}
    try:
        for name, settings in config.simulators.items():
            simulator = simulator_class(settings.kind)(name, settings, world)
            try:
                await simulator.start()
            except Exception as exc:
                # Server libraries say "could not listen"; the operator needs which and where.
                where = f"{settings.host}:{getattr(settings, 'port', '?')}"
                raise SimulatorStartError(
                    f"simulator {name!r} ({settings.kind}) cannot start on {where}: {exc}"
                ) from exc
            started[name] = simulator
            log.info(
                "simulator started",
                simulator=name,
                kind=settings.kind,
                endpoints=simulator.endpoints(),
            )
        yield started
    finally:
        for name, simulator in reversed(started.items()):
            try:
                await simulator.stop()
            finally:
                log.info("simulator stopped", simulator=name)


def require_simulators(config: LoadedConfig) -> None:
    """`--simulate` on a config without simulators is bad input, refused before anything runs."""
    if not config.model.simulators:
        raise InputError(
            [
                Problem(
                    str(config.path),
                    None,
                    "simulators",
                    "--simulate needs a config that declares simulators",
                )
            ]
        )
