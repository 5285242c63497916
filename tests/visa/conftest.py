"""Fixtures for the visa driver tests: a meter simulator on a real TCP socket and a real pty,
and drivers connected to it. Ports are ephemeral; the pty's symlink lives in tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from visa_support import driver_config, meter_settings

from mdfd.drivers import DriverContext
from mdfd.drivers.visa import VisaDriver
from mdfd.simulators.clock import ScaledClock
from mdfd.simulators.meter import MeterSimulator
from mdfd.simulators.world import World


@pytest.fixture
def world() -> World:
    return World(ScaledClock(600.0), seed=7)


@pytest.fixture
async def meter(tmp_path: Path, world: World) -> AsyncIterator[MeterSimulator]:
    simulator = MeterSimulator("meter", meter_settings(tmp_path / "run" / "meter.pty"), world)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture(params=["tcp", "serial"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def driver(meter: MeterSimulator, transport: str) -> AsyncIterator[VisaDriver]:
    instance = VisaDriver("meter", driver_config(meter, transport), DriverContext())
    await instance.connect()
    try:
        yield instance
    finally:
        await instance.close()
