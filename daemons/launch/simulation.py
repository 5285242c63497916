"""Start the simulators a config declares, all in one process around one shared world."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import AsyncIterator

from mdfd.daemons.core.config import LoadedConfig, as_written, variables_of
from mdfd.daemons.core.logging import get_logger
from mdfd.daemons.core.portholder import port_holder
from mdfd.recipes.located import InputError, Problem
from mdfd.simulators.base import Simulator, SimulatorSettings, simulator_class
from mdfd.simulators.clock import ScaledClock
from mdfd.simulators.world import World


class SimulatorStartError(RuntimeError):
    """A simulator could not bind its endpoints (a port in use, a bad host)."""


@contextlib.asynccontextmanager
async def running_simulators(loaded: LoadedConfig) -> AsyncIterator[dict[str, Simulator]]:
    """Start every simulator of `config`; stop them all on exit, whatever happened.

    A simulator that fails to start because its port was taken since `require_simulators`
    checked is reported the same way (bad setup, exit 2), not as the library's error.
    """
    config = loaded.model
    simulation = config.simulation
    scale = simulation.time_scale if simulation else 1.0
    world = World(ScaledClock(scale), seed=simulation.seed if simulation else 0)
    log = get_logger(mdf=config.mdf.id)
    started: dict[str, Simulator] = {}

    async def start(name: str, settings: SimulatorSettings) -> None:
        simulator = simulator_class(settings.kind)(name, settings, world)
        # Kept before it starts: a start cut short (a sibling failed, SIGTERM during start-up)
        # may have bound something already, and every simulator's stop() is safe to call then.
        started[name] = simulator
        try:
            await simulator.start()
        except Exception as exc:
            problem = _port_problem(loaded, name, settings)
            if problem is not None:
                raise InputError([problem]) from exc
            # Server libraries say "could not listen"; the operator needs which and where.
            where = f"{settings.host}:{getattr(settings, 'port', '?')}"
            raise SimulatorStartError(
                f"simulator {name!r} ({settings.kind}) cannot start on {where}: {exc}"
            ) from exc
        log.info(
            "simulator started",
            simulator=name,
            kind=settings.kind,
            endpoints=simulator.endpoints(),
        )

    try:
        # Concurrently: the OPC-UA server fills its standard address space in a worker thread
        # for about a second, while the Modbus and SCPI servers only bind. Every start runs to
        # its end (a failing one does not cancel its siblings half-way); all are stopped below.
        outcomes = await asyncio.gather(
            *(start(name, settings) for name, settings in config.simulators.items()),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        yield started
    finally:
        for name, simulator in reversed(started.items()):
            try:
                await simulator.stop()
            except Exception as exc:  # one simulator's failed stop must not keep the others up
                log.warning("simulator stop failed", simulator=name, error=repr(exc))
            else:
                log.info("simulator stopped", simulator=name)


def require_simulators(config: LoadedConfig) -> None:
    """`--simulate` needs a config that declares simulators, on ports this process can listen
    on: otherwise bad input, refused before anything runs (a run row, a lock, a data file)."""
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
    problems = [
        problem
        for name, settings in config.model.simulators.items()
        if (problem := _port_problem(config, name, settings)) is not None
    ]
    if problems:
        raise InputError(problems)


def _port_problem(config: LoadedConfig, name: str, settings: SimulatorSettings) -> Problem | None:
    """Why the simulator cannot listen on its configured TCP port, naming who holds it and
    the variable (or field) to change; None when it can, or when it has no fixed port."""
    port = getattr(settings, "port", None)
    if not port:
        return None
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # as the servers do: a closed connection's TIME_WAIT does not make the port busy
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((settings.host, port))
        return None
    except OSError as exc:
        failure = exc
    where = ("simulators", name, "port")
    doc = as_written(config)
    if failure.errno == errno.EADDRINUSE:
        holder = port_holder(port)
        reason = f"port {port} is already in use" + (f" by {holder}" if holder else "")
    else:
        reason = f"cannot listen on {settings.host}:{port}: {failure.strerror}"
    variables = variables_of(doc, where)
    remedy = (
        f"set {' or '.join(variables)} to a free port"
        if variables
        else "change this port (and the instrument's) to a free one"
    )
    return doc.problem(where, f"{reason}; {remedy}")
