"""The visa driver against the meter simulator over a real TCP socket and a real pty."""

from __future__ import annotations

import pytest
from visa_support import assert_follow_specimen, instrument

from mdfd.drivers import (
    ChannelError,
    DriverContext,
    InstrumentDisconnected,
    ProtocolError,
    driver_class,
)
from mdfd.drivers.visa import VisaDriver
from mdfd.simulators.meter import MeterSimulator


async def test_identify(driver: VisaDriver) -> None:
    assert await driver.identify() == "MDFD,SIM-LCR-3000,SN0001,1.0"


def test_registered_under_visa() -> None:
    assert driver_class("visa") is VisaDriver


async def test_reads_follow_the_specimen(driver: VisaDriver, meter: MeterSimulator) -> None:
    names = ["capacitance", "loss", "resistivity", "hardness", "colour_strength"]
    readings = await driver.read(names)
    assert_follow_specimen(readings, names, meter)
    assert readings["capacitance"].unit == "nF"
    assert readings["resistivity"].unit == "microohm*cm"


async def test_parse_rules(driver: VisaDriver) -> None:
    readings = await driver.read(["all", "hardness_of_all", "identity_model", "specimen"])
    everything = readings["all"].value
    assert isinstance(everything, list)
    assert len(everything) == 5
    # One MEAS:ALL? answers both channels, so the field is the very same number.
    assert readings["hardness_of_all"].value == everything[3]
    assert readings["identity_model"].value == "SIM-LCR-3000"
    assert readings["specimen"].value == 0


async def test_write_then_read_back(driver: VisaDriver, meter: MeterSimulator) -> None:
    await driver.write("specimen", 42.0)
    assert meter.meter.specimen_id == 42
    assert (await driver.read(["specimen"]))["specimen"].value == 42
    await driver.write("averaging", 16)
    assert (await driver.read(["averaging"]))["averaging"].value == 16


async def test_instrument_rejection_is_an_error(driver: VisaDriver) -> None:
    with pytest.raises(ProtocolError) as caught:
        await driver.write("averaging", 1000)
    error = caught.value
    assert error.instrument == "meter"
    assert error.channel == "averaging"
    assert "SENS:AVER:COUN 1000" in error.message
    assert str(error.reply).startswith("-222,")
    # The queue was drained by the check: the next write is clean.
    await driver.write("averaging", 4)


async def test_undefined_header_is_an_error(driver: VisaDriver) -> None:
    with pytest.raises(ProtocolError) as caught:
        await driver.write("bogus", 1)
    assert str(caught.value.reply).startswith("-113,")


async def test_limits_refuse_before_the_wire(driver: VisaDriver, meter: MeterSimulator) -> None:
    with pytest.raises(ChannelError):
        await driver.write("specimen", 2_000_000)
    with pytest.raises(ChannelError):
        await driver.write("capacitance", 1.0)
    with pytest.raises(ChannelError):
        await driver.read(["no_such_channel"])
    with pytest.raises(ChannelError):
        await driver.read(["bogus"])
    assert meter.meter.specimen_id == 0


async def test_unparsable_reply_names_channel_and_reply(meter: MeterSimulator) -> None:
    config = instrument(
        meter.endpoints()["visa"], channels={"model": {"query": "*IDN?", "field": 1}}
    )
    driver = VisaDriver("meter", config, DriverContext())
    await driver.connect()
    try:
        with pytest.raises(ProtocolError) as caught:
            await driver.read(["model"])
        assert caught.value.channel == "model"
        assert caught.value.reply == "MDFD,SIM-LCR-3000,SN0001,1.0"
        assert "*IDN?" in caught.value.message
    finally:
        await driver.close()


async def test_rejected_init_sequence_fails_connect(meter: MeterSimulator) -> None:
    config = instrument(meter.endpoints()["visa"], init=["*CLS", "SENS:AVER:COUN 0"])
    driver = VisaDriver("meter", config, DriverContext())
    with pytest.raises(ProtocolError) as caught:
        await driver.connect()
    assert "SENS:AVER:COUN 0" in caught.value.message
    assert str(caught.value.reply).startswith("-222,")
    await driver.close()


async def test_a_serial_port_has_one_owner(meter: MeterSimulator) -> None:
    by_link = VisaDriver("first", instrument(meter.endpoints()["visa_serial"]), DriverContext())
    by_device = instrument(f"ASRL{meter.endpoints()['serial']}::INSTR")
    second = VisaDriver("second", by_device, DriverContext())
    await by_link.connect()
    try:
        with pytest.raises(InstrumentDisconnected, match="owned by instrument 'first'"):
            await second.connect()
    finally:
        await by_link.close()
    await second.connect()
    try:
        assert await second.identify() == "MDFD,SIM-LCR-3000,SN0001,1.0"
    finally:
        await second.close()
