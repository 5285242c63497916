"""Compound queries (`queries_per_message`) and the worker thread that runs every VISA call."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from pydantic import ValidationError
from visa_support import CHANNELS, assert_follow_specimen, driver_config, instrument

from mdfd.drivers import DriverContext, ProtocolError
from mdfd.drivers.visa import VisaDriver
from mdfd.drivers.visa.parse import program_message, split_responses
from mdfd.drivers.visa.worker import Worker
from mdfd.simulators.meter import MeterSimulator

SCAN = ["capacitance", "loss", "resistivity", "hardness", "colour_strength"]


def test_program_message_roots_every_later_header() -> None:
    queries = ["MEAS:CAP?", " MEAS:LOSS?", "*IDN?", ":SYST:ERR?"]
    assert program_message(queries) == "MEAS:CAP?;:MEAS:LOSS?;*IDN?;:SYST:ERR?"
    assert program_message(["MEAS:CAP?"]) == "MEAS:CAP?"


@pytest.mark.parametrize(
    ("raw", "count", "units"),
    [
        (b"1;2;3", 3, [b"1", b"2", b"3"]),
        (b'1;"a;""b";3', 3, [b"1", b'"a;""b"', b"3"]),
        (b"1;ACME,X;Y,1.0", 2, [b"1", b"ACME,X;Y,1.0"]),  # arbitrary ASCII, last
        (b"1;2", 3, [b"1", b"2"]),  # a query failed: fewer units than queries
    ],
)
def test_split_responses(raw: bytes, count: int, units: list[bytes]) -> None:
    assert split_responses(raw, count) == units


def test_a_compound_channel_query_cannot_be_joined() -> None:
    channels: dict[str, Any] = {"pair": {"query": "MEAS:CAP?;:MEAS:LOSS?", "parse": "floats"}}
    assert instrument("TCPIP::h::1::SOCKET", channels=channels).queries_per_message == 1
    with pytest.raises(ValidationError, match="compound"):
        instrument("TCPIP::h::1::SOCKET", channels=channels, queries_per_message=2)


@pytest.fixture
async def compound(meter: MeterSimulator, transport: str) -> Any:
    config = driver_config(meter, transport, queries_per_message=3)
    instance = VisaDriver("meter", config, DriverContext())
    await instance.connect()
    try:
        yield instance
    finally:
        await instance.close()


async def test_compound_scan_follows_the_specimen(
    compound: VisaDriver, meter: MeterSimulator
) -> None:
    readings = await compound.read(SCAN)
    assert_follow_specimen(readings, SCAN, meter)


async def test_compound_parse_rules_in_chunks(compound: VisaDriver) -> None:
    # Five distinct queries, three to a message; *IDN?'s arbitrary ASCII reply comes last in
    # the second message, a string and an array travel next to plain numbers.
    await compound.write("specimen", 7)
    names = ["capacitance", "all", "hardness_of_all", "averaging", "specimen", "identity_model"]
    readings = await compound.read(names)
    everything = readings["all"].value
    assert isinstance(everything, list)
    assert len(everything) == 5
    assert readings["hardness_of_all"].value == everything[3]
    assert readings["averaging"].value == 1
    assert readings["specimen"].value == 7
    assert readings["identity_model"].value == "SIM-LCR-3000"


async def test_a_failed_query_in_a_message_is_reported_then_recovered(
    meter: MeterSimulator, transport: str
) -> None:
    channels = {**CHANNELS, "nonsense": {"query": "MEAS:NONS?"}}
    config = driver_config(meter, transport, queries_per_message=5, channels=channels)
    driver = VisaDriver("meter", config, DriverContext())
    await driver.connect()
    try:
        with pytest.raises(ProtocolError) as caught:
            await driver.read(["capacitance", "nonsense", "loss"])
        assert "3 queries" in caught.value.message
        assert "2 responses" in caught.value.message
        assert str(caught.value.reply).count(";") == 1
        readings = await driver.read(["capacitance", "loss"])
        assert all(isinstance(r.value, float) for r in readings.values())
    finally:
        await driver.close()


async def test_worker_runs_in_order_and_survives_a_cancelled_caller() -> None:
    worker = Worker("test-worker")
    release = threading.Event()
    order: list[str] = []

    def blocked() -> str:
        release.wait(10)
        order.append("blocked")
        return "late"

    def quick(tag: str) -> str:
        order.append(tag)
        return tag

    try:
        first = asyncio.ensure_future(worker.call(blocked))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(worker.call(quick, "next"))
        first.cancel()
        release.set()
        assert await asyncio.wait_for(second, 10) == "next"
        assert first.cancelled()
        assert order == ["blocked", "next"]
        with pytest.raises(ZeroDivisionError):
            await asyncio.wait_for(worker.call(divmod, 1, 0), 10)
        assert await asyncio.wait_for(worker.call(quick, "after"), 10) == "after"
    finally:
        worker.stop()


async def test_closing_one_instrument_leaves_the_others_open(meter: MeterSimulator) -> None:
    # pyvisa shares one ResourceManager per VISA library in a process: closing it would close
    # every other instrument's session (and a plain pyvisa user's) on the same backend.
    first = VisaDriver("first", instrument(meter.endpoints()["visa"]), DriverContext())
    second = VisaDriver("second", instrument(meter.endpoints()["visa"]), DriverContext())
    await first.connect()
    await second.connect()
    try:
        await first.close()
        readings = await second.read(SCAN)
        assert all(isinstance(r.value, float) for r in readings.values())
    finally:
        await second.close()
