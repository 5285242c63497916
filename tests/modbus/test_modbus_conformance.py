"""The driver conformance kit against the furnace simulator: Modbus TCP through the kit's wire
proxy (so the wire-fault checks run) and Modbus RTU over a real pty."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from modbus_support import FURNACE_CHANNELS, instrument

from mdfd.drivers import DriverContext
from mdfd.drivers.modbus import ModbusDriver, ModbusInstrument
from mdfd.drivers.testing import ConformanceTarget, DriverConformance, WireProxy
from mdfd.simulators.furnace import FurnaceSimulator

CHANNELS = ["temperature", "output", "running", "uptime", "setpoint"]
# a float32 in the furnace's scratch memory, holding NaN: the bad channel of the block checks
BROKEN = {"broken": {"address": 100, "type": "float32", "writable": True}}


async def park_nan(config: ModbusInstrument) -> None:
    driver = ModbusDriver("furnace", config, DriverContext())
    await driver.connect()
    try:
        await driver.write("broken", math.nan)
    finally:
        await driver.close()


def target_for(config: ModbusInstrument, proxy: WireProxy | None) -> ConformanceTarget:
    return ConformanceTarget(
        make_driver=lambda context: ModbusDriver("furnace", config, context),
        channels=CHANNELS,
        units={name: FURNACE_CHANNELS[name].get("unit", "") for name in CHANNELS},
        writable="setpoint",
        in_limits=300.0,
        out_of_limits=2000.0,
        failure_bound=6.0,
        proxy=proxy,
        steady_channels=["running"],
        bad_channel="broken",
    )


class TestModbusTcp(DriverConformance):
    @pytest.fixture
    async def target(self, furnace: FurnaceSimulator) -> AsyncIterator[ConformanceTarget]:
        async with WireProxy("127.0.0.1", furnace.tcp_port) as proxy:
            link: dict[str, Any] = {"type": "tcp", "host": "127.0.0.1", "port": proxy.port}
            config = instrument(furnace, "tcp", {**FURNACE_CHANNELS, **BROKEN}, link=link)
            await park_nan(config)
            yield target_for(config, proxy)


class TestModbusRtu(DriverConformance):
    @pytest.fixture
    async def target(self, furnace: FurnaceSimulator) -> ConformanceTarget:
        config = instrument(furnace, "rtu", {**FURNACE_CHANNELS, **BROKEN})
        await park_nan(config)
        return target_for(config, None)
