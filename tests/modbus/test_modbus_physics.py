"""The furnace's temperature follows a setpoint change the way the physics says: it ramps no
faster than the ramp limit, rises to the setpoint, settles inside the tolerance and stays there
(no runaway), and falls back when the heater stops — all observed through the driver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from modbus_support import furnace_settings, instrument

from mdfd.drivers import DriverContext
from mdfd.drivers.modbus import ModbusDriver
from mdfd.simulators.clock import ScaledClock
from mdfd.simulators.furnace import FurnaceSimulator
from mdfd.simulators.world import World

SCALE = 600.0  # one wall second = ten simulated minutes, as in config/sim.yaml
TAU = 120.0  # the zone's default thermal time constant, simulated seconds
CHANNELS = ["temperature", "working_setpoint", "output", "at_setpoint"]


@pytest.fixture
async def realistic(tmp_path: Path) -> AsyncIterator[tuple[World, ModbusDriver]]:
    world = World(ScaledClock(SCALE), seed=11)
    settings = furnace_settings(None, tau=None, noise=0.05)
    furnace = FurnaceSimulator("furnace", settings, world)
    await furnace.start()
    config = instrument(furnace, "tcp", timeout=2.0, retries=2)
    driver = ModbusDriver("furnace", config, DriverContext(world.clock.now))
    await driver.connect()
    try:
        yield world, driver
    finally:
        await driver.close()
        await furnace.stop()


async def sample(driver: ModbusDriver) -> dict[str, float | bool]:
    readings = await driver.read(CHANNELS)
    await asyncio.sleep(0.005)
    return {name: reading.value for name, reading in readings.items()}  # type: ignore[misc]


async def test_temperature_follows_a_setpoint_step(
    realistic: tuple[World, ModbusDriver],
) -> None:
    world, driver = realistic
    await driver.write("ramp_rate", 100.0)
    await driver.write("setpoint", 300.0)
    started = world.clock.now()
    history = []
    reached_at = None
    while reached_at is None:  # the working setpoint ramps up and the zone follows
        assert world.clock.now() - started < 3600, "setpoint not reached within a simulated hour"
        point = await sample(driver)
        history.append(point)
        if point["at_setpoint"]:
            reached_at = world.clock.now()
    ramp_seconds = (300.0 - 25.0) / 100.0 * 60.0
    assert reached_at - started >= ramp_seconds  # the ramp limit holds it back
    while world.clock.now() < reached_at + 3 * TAU:  # three time constants to settle
        history.append(await sample(driver))
    temperatures = [float(p["temperature"]) for p in history]
    assert temperatures[-1] > temperatures[0] + 250.0  # it rose
    assert max(temperatures) < 300.0 + 10.0  # bounded overshoot
    for point in history:  # tracks the ramping working setpoint closely
        assert abs(float(point["temperature"]) - float(point["working_setpoint"])) < 10.0
    assert all(0.0 <= float(p["output"]) <= 100.0 for p in history)

    held = [await sample(driver) for _ in range(20)]
    assert all(abs(float(p["temperature"]) - 300.0) < 1.0 for p in held)  # settled, no runaway


async def test_stopping_the_heater_lets_the_zone_cool(
    realistic: tuple[World, ModbusDriver],
) -> None:
    world, driver = realistic
    await driver.write("ramp_rate", 0.1)
    await driver.write("setpoint", 25.0)
    world.advance()
    world.zone.temperature = world.zone.working_setpoint = world.zone.setpoint = 200.0
    await driver.write("running", False)
    start = (await sample(driver))["temperature"]
    await asyncio.sleep(0.3)  # ~3 simulated minutes, 1.5 time constants
    later = await sample(driver)
    assert later["output"] == 0.0
    assert float(later["temperature"]) < float(start) - 50.0
    assert float(later["temperature"]) > 25.0
