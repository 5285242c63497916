"""`read_block` of the opcua driver against the reactor simulator over real TCP: every number
type of the address space as float64, subscribed channels from their notifications, a bad
status or a NaN as NaN/BAD without losing the scan, text nodes refused before the wire."""

from __future__ import annotations

import math

import pytest
from opcua_support import eventually

from mdfd.drivers import QUALITY_CODES, BlockReadable, ChannelError, Quality
from mdfd.drivers.opcua import OpcUaDriver

TEXT = {"fault_bad", "fault_invalid", "fault_stuck"}


async def test_a_block_holds_every_number_channel_as_read_gives_it(driver: OpcUaDriver) -> None:
    assert isinstance(driver, BlockReadable)
    names = [name for name in driver.config.channels if name not in TEXT]
    await driver.write("ph_sp", 6.5)
    await driver.write("sample_interval", 45)
    await driver.write("pump", True)
    # subscribed channels answer from their notification once it has come
    await eventually(lambda: driver.read(["temperature", "selectivity"]))
    block = await driver.read_block(names)
    readings = await driver.read(names)
    assert block.channels == tuple(names)
    values = dict(zip(names, block.values.tolist(), strict=True))
    assert values["ph_sp"] == 6.5
    assert values["sample_interval"] == 45.0  # UInt16
    assert values["pump"] == 1.0  # Boolean
    assert values["fault_restart"] == 0.0
    assert values["agitator"] == pytest.approx(readings["agitator"].value)  # Float
    assert values["temperature"] == pytest.approx(readings["temperature"].value, abs=5.0)
    assert [QUALITY_CODES[c] for c in block.quality] == [Quality.GOOD] * len(names)


async def test_a_bad_status_or_a_nan_is_nan_and_bad_and_the_scan_is_kept(
    driver: OpcUaDriver,
) -> None:
    names = ["pressure", "ph", "conversion", "temperature_sp"]
    await driver.write("fault_bad", "Analyser.Conversion")
    await driver.write("fault_invalid", "Bath.pH")
    try:
        block = await eventually(
            lambda: driver.read_block(names), lambda b: bool(b.quality[1] == 2)
        )
    finally:
        await driver.write("fault_bad", "")
        await driver.write("fault_invalid", "")
    quality = [QUALITY_CODES[c] for c in block.quality]
    assert quality == [Quality.GOOD, Quality.BAD, Quality.BAD, Quality.GOOD]
    assert math.isnan(block.values[1])
    assert math.isnan(block.values[2])
    assert math.isfinite(block.values[0])
    assert math.isfinite(block.values[3])


async def test_a_text_node_in_a_block_is_refused_naming_its_type(driver: OpcUaDriver) -> None:
    with pytest.raises(ChannelError, match="String") as caught:
        await driver.read_block(["pressure", "fault_stuck"])
    assert caught.value.channel == "fault_stuck"
    with pytest.raises(ChannelError, match="no such channel"):
        await driver.read_block(["pressure", "nope"])
