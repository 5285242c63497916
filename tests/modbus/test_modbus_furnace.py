"""The driver against the furnace simulator over a real TCP socket and a real pty: every type
and order, coalescing (requests counted on the simulator), writes and read-back."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from modbus_support import FURNACE_CHANNELS, PV_CHANNELS, hold_temperature, instrument

from mdfd.drivers import (
    ChannelError,
    DriverContext,
    InstrumentDisconnected,
    ProtocolError,
    Quality,
)
from mdfd.drivers.modbus import ModbusDriver
from mdfd.simulators.furnace import FurnaceSimulator


async def test_every_type_and_order_reads_the_same_process_value(
    driver: ModbusDriver, furnace: FurnaceSimulator
) -> None:
    hold_temperature(furnace, 123.456)
    readings = await driver.read(list(PV_CHANNELS))
    assert readings["pv_abcd"].value == pytest.approx(123.456, abs=1e-4)
    for name in ("pv_cdab", "pv_badc", "pv_dcba", "pv_float64"):
        assert readings[name].value == pytest.approx(readings["pv_abcd"].value, abs=1e-4), name
    assert readings["pv_int16"].value == pytest.approx(123.5, abs=0.051)
    assert readings["pv_int32"].value == pytest.approx(123.456, abs=0.002)


async def test_a_scan_is_coalesced_into_one_request_per_table(
    driver: ModbusDriver, furnace: FurnaceSimulator
) -> None:
    names = list(FURNACE_CHANNELS)
    await driver.read(names)  # first scan plans
    before, sent = furnace.request_total, driver.requests
    readings = await driver.read(names)
    assert set(readings) == set(names)
    # 24 channels: coil 0, discrete inputs 0..3, input registers 0..33, holding 0 and 10..13
    # (9 registers apart: more than max_gap 8) and holding 900..904
    assert furnace.request_total - before == 6
    assert driver.requests - sent == 6
    assert furnace.requests[4] >= 2


async def test_float_setpoint_write_reads_back_in_every_representation(
    driver: ModbusDriver, furnace: FurnaceSimulator
) -> None:
    await driver.write("setpoint", 812.5)
    readings = await driver.read(["setpoint", "setpoint_x10"])
    assert readings["setpoint"].value == pytest.approx(812.5)
    assert readings["setpoint_x10"].value == pytest.approx(812.5)
    assert furnace.world.zone.setpoint == pytest.approx(812.5)


async def test_scaled_int16_write(driver: ModbusDriver, furnace: FurnaceSimulator) -> None:
    await driver.write("setpoint_x10", 99.9)
    assert furnace.world.zone.setpoint == pytest.approx(99.9)
    assert (await driver.read(["setpoint"]))["setpoint"].value == pytest.approx(99.9, abs=1e-4)


async def test_coil_write_stops_and_starts_the_heater(
    driver: ModbusDriver, furnace: FurnaceSimulator
) -> None:
    await driver.write("running", False)
    assert (await driver.read(["running"]))["running"].value is False
    assert furnace.world.zone.running is False
    await driver.write("running", True)
    assert (await driver.read(["running"]))["running"].value is True


async def test_limits_and_read_only_channels_are_refused_before_the_wire(
    driver: ModbusDriver, furnace: FurnaceSimulator
) -> None:
    before = furnace.request_total
    with pytest.raises(ChannelError, match="outside limits"):
        await driver.write("setpoint", 1500)
    with pytest.raises(ChannelError, match="not writable"):
        await driver.write("temperature", 20)
    with pytest.raises(ChannelError, match="no such channel"):
        await driver.read(["nope"])
    with pytest.raises(ChannelError, match="not a boolean"):
        await driver.write("running", 7)
    assert furnace.request_total == before


async def test_device_refusal_is_a_protocol_error_naming_everything(
    driver: ModbusDriver,
) -> None:
    # the ramp rate has no configured limit; the controller itself refuses > 1000 degC/min
    with pytest.raises(ProtocolError) as caught:
        await driver.write("ramp_rate", 5000)
    text = str(caught.value)
    assert "'furnace'" in text
    assert "'ramp_rate'" in text
    assert "unit 1 holding_register 12..13" in text
    assert "exception 3 (ILLEGAL_VALUE)" in text


async def test_identify_uses_device_identification(driver: ModbusDriver) -> None:
    assert await driver.identify() == "mdfd-sim,FC-1400 furnace controller,1.0"


SCRATCH_TYPES: list[dict[str, Any]] = [
    {"type": "int16"},
    {"type": "uint16"},
    {"type": "int32", "word_order": "little"},
    {"type": "uint32", "byte_order": "little"},
    {"type": "float32", "word_order": "little", "byte_order": "little"},
    {"type": "float64", "word_order": "little"},
    {"type": "float64", "byte_order": "little"},
    {"type": "int16", "scale": 0.01, "offset": 100.0},
]
SCRATCH_VALUES = [-1234, 60000, -7_654_321, 4_000_000_000, 3.25, 1.0e100, -2.5e-7, 87.65]


async def test_scratch_memory_round_trips_every_type_and_order(
    furnace: FurnaceSimulator, transport: str
) -> None:
    channels = {
        f"s{i}": {"address": 100 + 4 * i, "writable": True, **fields}
        for i, fields in enumerate(SCRATCH_TYPES)
    }
    driver = ModbusDriver("scratch", instrument(furnace, transport, channels), DriverContext())
    await driver.connect()
    try:
        for i, value in enumerate(SCRATCH_VALUES):
            await driver.write(f"s{i}", value)
        before = furnace.request_total
        readings = await driver.read(list(channels))
        assert furnace.request_total - before == 1
    finally:
        await driver.close()
    for i, value in enumerate(SCRATCH_VALUES):
        assert readings[f"s{i}"].value == pytest.approx(value, rel=1e-6), SCRATCH_TYPES[i]


async def test_a_nan_or_inf_float_on_the_wire_is_a_bad_reading(
    furnace: FurnaceSimulator, transport: str
) -> None:
    channels = {
        "nan_hi": {"address": 200, "type": "uint16", "writable": True},
        "inf_hi": {"address": 202, "type": "uint16", "writable": True},
        "nan": {"address": 200, "type": "float32"},
        "inf": {"address": 202, "type": "float32"},
        "fine": {"address": 204, "type": "float32", "writable": True},
    }
    driver = ModbusDriver("scratch", instrument(furnace, transport, channels), DriverContext())
    await driver.connect()
    try:
        await driver.write("nan_hi", 0x7FC0)  # float32 quiet NaN, ABCD
        await driver.write("inf_hi", 0x7F80)  # float32 +inf
        await driver.write("fine", 21.5)
        readings = await driver.read(["nan", "inf", "fine"])
    finally:
        await driver.close()
    assert math.isnan(readings["nan"].value)
    assert readings["inf"].value == math.inf
    assert (readings["nan"].quality, readings["inf"].quality) == (Quality.BAD, Quality.BAD)
    assert (readings["fine"].value, readings["fine"].quality) == (21.5, Quality.GOOD)


async def test_concurrent_scans_are_serialized_on_one_connection(
    driver: ModbusDriver,
) -> None:
    results = await asyncio.gather(*(driver.read(list(PV_CHANNELS)) for _ in range(10)))
    assert all(set(r) == set(PV_CHANNELS) for r in results)
    assert driver.link is not None


async def test_reading_before_connect_is_refused(furnace: FurnaceSimulator) -> None:
    driver = ModbusDriver("furnace", instrument(furnace, "tcp"), DriverContext())
    with pytest.raises(InstrumentDisconnected, match="not connected"):
        await driver.read(["temperature"])


async def test_one_device_memory_behind_both_ports(furnace: FurnaceSimulator) -> None:
    """Scratch registers and coils written on one port read back on the other, both ways (the
    simulator keeps one memory through pymodbus' action hook, not its internals)."""
    channels = {
        "scratch": {"address": 100, "type": "uint16", "writable": True},
        "spare_coil": {"table": "coil", "address": 5, "type": "bool", "writable": True},
    }
    tcp = ModbusDriver("tcp", instrument(furnace, "tcp", channels), DriverContext())
    rtu = ModbusDriver("rtu", instrument(furnace, "rtu", channels), DriverContext())
    await tcp.connect()
    await rtu.connect()
    try:
        await tcp.write("scratch", 4321)
        await tcp.write("spare_coil", True)
        over_rtu = await rtu.read(["scratch", "spare_coil"])
        await rtu.write("scratch", 1234)
        over_tcp = await tcp.read(["scratch"])
    finally:
        await tcp.close()
        await rtu.close()
    assert (over_rtu["scratch"].value, over_rtu["spare_coil"].value) == (4321, True)
    assert over_tcp["scratch"].value == 1234
