"""Fixtures for the OPC-UA tests.

Most tests share one `mdfd sim` process running the reactor (an asyncua server takes seconds
to build its address space, so one per test would dominate the run); each test leaves the
shared simulator's faults as it found them. Tests that need the world model or their own
settings start a simulator in the test's event loop instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opcua_support import instrument, start_simulator, write_config

from mdfd.drivers import DriverContext
from mdfd.drivers.opcua import OpcUaDriver
from mdfd.simulators.clock import ScaledClock
from mdfd.simulators.reactor import ReactorSettings, ReactorSimulator
from mdfd.simulators.world import World
from tests.support import free_port, stop_process


@pytest.fixture(scope="session")
def simulator_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(tmp_path_factory.mktemp("opcua-shared"), free_port())


@pytest.fixture(scope="session")
def reactor_url(simulator_config: Path) -> Iterator[str]:
    process, url = start_simulator(simulator_config)
    try:
        yield url
    finally:
        stop_process(process)


@pytest.fixture
async def driver(reactor_url: str) -> AsyncIterator[OpcUaDriver]:
    opcua = OpcUaDriver("reactor", instrument(reactor_url), DriverContext())
    await opcua.connect()
    try:
        yield opcua
    finally:
        await opcua.close()


@pytest.fixture
def world() -> World:
    return World(ScaledClock(600.0), seed=7)


@pytest.fixture
async def reactor(world: World) -> AsyncIterator[ReactorSimulator]:
    """A reactor simulator in this test's event loop, for tests that look at the world."""
    simulator = ReactorSimulator(
        "reactor", ReactorSettings(port=0, update_interval=0.05, restart_downtime=0.3), world
    )
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()
