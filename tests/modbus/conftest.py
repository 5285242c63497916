"""Fixtures for the modbus tests: a furnace simulator on a real TCP socket and a real pty
(null-modem pair), and drivers connected to it over either."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from modbus_support import furnace_settings, instrument

from mdfd.drivers import DriverContext
from mdfd.drivers.modbus import ModbusDriver
from mdfd.simulators.clock import ScaledClock
from mdfd.simulators.furnace import FurnaceSimulator
from mdfd.simulators.world import World


@pytest.fixture
def world() -> World:
    return World(ScaledClock(60.0), seed=3)


@pytest.fixture
def link_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "furnace.pty"


@pytest.fixture
async def furnace(link_path: Path, world: World) -> AsyncIterator[FurnaceSimulator]:
    simulator = FurnaceSimulator("furnace", furnace_settings(link_path), world)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture(params=["tcp", "rtu"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def driver(furnace: FurnaceSimulator, transport: str) -> AsyncIterator[ModbusDriver]:
    instance = ModbusDriver("furnace", instrument(furnace, transport), DriverContext())
    await instance.connect()
    try:
        yield instance
    finally:
        await instance.close()
