"""Every injected fault becomes the right typed error, and the driver recovers afterwards."""

from __future__ import annotations

import asyncio

import pytest
from visa_support import driver_config, instrument, meter_settings, resource_of

from mdfd.drivers import (
    DriverContext,
    InstrumentDisconnected,
    InstrumentTimeout,
    ProtocolError,
    WriteOutcomeUnknown,
)
from mdfd.drivers.visa import VisaDriver
from mdfd.simulators.meter import MeterSimulator


async def test_slow_reply_within_timeout_is_fine(meter: MeterSimulator, transport: str) -> None:
    driver = VisaDriver("meter", driver_config(meter, transport, timeout=10.0), DriverContext())
    await driver.connect()
    try:
        meter.faults.delay = 0.2
        value = (await driver.read(["hardness"]))["hardness"].value
        assert isinstance(value, float)
        assert value > 40
    finally:
        await driver.close()


async def test_reply_slower_than_timeout(driver: VisaDriver, meter: MeterSimulator) -> None:
    meter.faults.delay = 2.0
    with pytest.raises(InstrumentTimeout) as caught:
        await driver.read(["capacitance"])
    assert caught.value.instrument == "meter"
    assert "MEAS:CAP?" in caught.value.message
    meter.faults.delay = 0.0
    # The late reply must not be taken for the answer to the next query.
    readings = await driver.read(["specimen", "capacitance"])
    assert readings["specimen"].value == 0
    assert isinstance(readings["capacitance"].value, float)


async def test_no_reply(driver: VisaDriver, meter: MeterSimulator) -> None:
    meter.faults.mute = 1
    with pytest.raises(InstrumentTimeout, match="MEAS:RES"):
        await driver.read(["resistivity"])
    assert isinstance((await driver.read(["resistivity"]))["resistivity"].value, float)


async def test_garbage(driver: VisaDriver, meter: MeterSimulator) -> None:
    meter.faults.garbage = 1
    with pytest.raises(ProtocolError) as caught:
        await driver.read(["loss"])
    assert "MEAS:LOSS?" in caught.value.message
    assert caught.value.channel == "loss"
    assert isinstance(caught.value.reply, bytes)
    assert caught.value.reply
    assert isinstance((await driver.read(["loss"]))["loss"].value, float)


async def test_injected_error_fails_the_next_write(
    driver: VisaDriver, meter: MeterSimulator
) -> None:
    meter.meter.execute('SIM:FAULT:ERROR -300,"sensor overload"')
    with pytest.raises(ProtocolError) as caught:
        await driver.write("specimen", 3)
    assert "sensor overload" in str(caught.value.reply)
    assert caught.value.channel == "specimen"


async def test_faults_on_the_wire(driver: VisaDriver, meter: MeterSimulator) -> None:
    """SIM:FAULT commands work from any client, and are themselves never faulted."""
    host, port = meter.endpoints()["tcp"].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"SIM:FAULT:MUTE 1;:SIM:FAULT:DELAY 0.05\nSIM:FAULT?\n")
        reply = await asyncio.wait_for(reader.readline(), timeout=5)
        assert reply == b"DELAY 0.05,MUTE 1,GARBAGE 0\n"
        with pytest.raises(InstrumentTimeout):
            await driver.read(["capacitance"])
        writer.write(b"sim:fault:clear\nSIM:FAULT?\n")
        reply = await asyncio.wait_for(reader.readline(), timeout=5)
        assert reply == b"DELAY 0,MUTE 0,GARBAGE 0\n"
    finally:
        writer.close()
        await writer.wait_closed()


async def test_dropped_connection_reconnects(meter: MeterSimulator) -> None:
    driver = VisaDriver("meter", driver_config(meter, "tcp"), DriverContext())
    await driver.connect()
    try:
        await driver.write("specimen", 5)
        meter.drop_connections()
        await asyncio.sleep(0.05)
        assert (await driver.read(["specimen"]))["specimen"].value == 5
    finally:
        await driver.close()


async def test_write_after_a_drop_is_sent_on_a_new_connection(meter: MeterSimulator) -> None:
    driver = VisaDriver("meter", driver_config(meter, "tcp"), DriverContext())
    await driver.connect()
    try:
        meter.drop_connections()
        await asyncio.sleep(0.05)
        await driver.write("specimen", 11)  # nothing was sent on the dead link: safe to send
        assert meter.meter.specimen_id == 11
    finally:
        await driver.close()


async def test_write_on_a_dead_link_is_not_retried(meter: MeterSimulator) -> None:
    driver = VisaDriver("meter", driver_config(meter, "tcp"), DriverContext())
    await driver.connect()
    try:
        meter.faults.mute = 1  # the error-queue check after the write goes unanswered
        with pytest.raises(WriteOutcomeUnknown) as caught:
            await driver.write("specimen", 9)
        assert caught.value.channel == "specimen"
        assert meter.meter.specimen_id == 9  # it did land; the driver could not know
    finally:
        await driver.close()


@pytest.mark.parametrize("transport", ["tcp", "serial"])
async def test_reconnect_after_simulator_restart(meter: MeterSimulator, transport: str) -> None:
    driver = VisaDriver("meter", driver_config(meter, transport), DriverContext())
    await driver.connect()
    port = int(meter.endpoints()["tcp"].rsplit(":", 1)[1])
    world = meter.meter.world
    resource = resource_of(meter, transport)
    try:
        await driver.write("averaging", 8)
        await meter.stop()
        with pytest.raises(InstrumentDisconnected):
            await driver.read(["averaging"])
        replacement = MeterSimulator("meter", meter_settings(meter.settings.link, port), world)
        await replacement.start()
        try:
            assert resource_of(replacement, transport) == resource
            # A fresh instrument: *RST state again, reached through the same resource.
            assert (await driver.read(["averaging"]))["averaging"].value == 1
        finally:
            await replacement.stop()
    finally:
        await driver.close()


async def test_connect_to_nothing_fails_typed(meter: MeterSimulator) -> None:
    port = int(meter.endpoints()["tcp"].rsplit(":", 1)[1])
    await meter.stop()
    config = instrument(f"TCPIP::127.0.0.1::{port}::SOCKET")
    driver = VisaDriver("meter", config, DriverContext())
    with pytest.raises(InstrumentDisconnected) as caught:
        await driver.connect()
    assert caught.value.address == config.resource
    with pytest.raises(InstrumentDisconnected):
        await driver.read(["capacitance"])
    await driver.close()
