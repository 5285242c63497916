"""Fixtures for the OPC-UA tests.

Most tests share one `mdfd sim` process running the reactor (an asyncua server takes seconds
to build its address space, so one per test would dominate the run); each test leaves the
shared simulator's faults as it found them. Tests that need the world model or their own
settings start a simulator in the test's event loop instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from opcua_support import instrument, start_simulator, write_config

from mdfd.drivers import DriverContext
from mdfd.drivers.opcua import OpcUaDriver
from mdfd.simulators.clock import ScaledClock
from mdfd.simulators.reactor import ReactorSettings, ReactorSimulator
from mdfd.simulators.world import World
from tests.support import stop_process


@pytest.fixture(scope="session")
def reactor_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The shared reactor simulator, on a port it picked (0) and reported."""
    process, url = start_simulator(write_config(tmp_path_factory.mktemp("opcua-shared")))
    try:
        yield url
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def simulator_config(tmp_path_factory: pytest.TempPathFactory, reactor_url: str) -> Path:
    """A config whose reactor instrument points at the shared simulator."""
    return write_config(tmp_path_factory.mktemp("opcua-probe"), urlsplit(reactor_url).port or 0)


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
