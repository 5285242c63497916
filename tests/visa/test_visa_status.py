"""The meter's IEEE 488.2 status model, driven by plain pyvisa over the raw socket as a lab
script would (nothing of mdfd's driver involved): *ESR?, *ESE, *STB?, *SRE, *CLS, *OPC."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pyvisa

from mdfd.simulators.meter import MeterSimulator


def with_instrument(
    resource: str, session: Callable[[pyvisa.resources.MessageBasedResource], object]
) -> object:
    manager = pyvisa.ResourceManager("@py")
    try:
        instrument = manager.open_resource(
            resource, read_termination="\n", write_termination="\n", timeout=2000
        )
        try:
            return session(instrument)
        finally:
            instrument.close()
    finally:
        manager.close()


def error_classes(instrument: pyvisa.resources.MessageBasedResource) -> dict[str, str]:
    """Each class of error sets its own ESR bit; reading the ESR clears it."""
    instrument.write("*CLS")
    seen = {"clean": instrument.query("*ESR?")}
    instrument.write("NO:SUCH:COMMAND")  # -113, a command error
    seen["command"] = instrument.query("*ESR?")
    seen["after read"] = instrument.query("*ESR?")
    instrument.write("SPEC:NEW 5000000")  # -222, an execution error
    seen["execution"] = instrument.query("*ESR?")
    instrument.write("SIM:FAULT:ERR -300")  # a device-dependent error
    seen["device"] = instrument.query("*ESR?")
    instrument.write("SIM:FAULT:DEL 0.5")
    instrument.write("*IDN?")
    instrument.write("*OPC")  # interrupts the delayed reply: -410, a query error; and OPC
    instrument.write("SIM:FAULT:DEL 0")
    seen["query and opc"] = instrument.query("*ESR?")
    return seen


def summary_bits(instrument: pyvisa.resources.MessageBasedResource) -> dict[str, str]:
    """The status byte: EAV (errors queued), MAV (a reply waits), ESB, MSS; and *CLS."""
    instrument.write("*CLS")
    seen = {"clean": instrument.query("*STB?")}
    seen["reply waiting"] = instrument.query("*IDN?;*STB?").rsplit(";", 1)[1]
    instrument.write("NOPE")
    seen["error queued"] = instrument.query("*STB?")
    instrument.write("*ESE 32")
    seen["ese"] = instrument.query("*ESE?")
    seen["event summary"] = instrument.query("*STB?")
    instrument.write("*SRE 96")
    seen["sre"] = instrument.query("*SRE?")
    seen["service request"] = instrument.query("*STB?")
    instrument.write("*CLS")
    seen["cleared"] = instrument.query("*STB?")
    seen["masks kept"] = instrument.query("*ESE?;*SRE?")
    seen["errors cleared"] = instrument.query("SYST:ERR?")
    return seen


async def test_event_status_register_records_each_error_class(meter: MeterSimulator) -> None:
    seen = await asyncio.to_thread(with_instrument, meter.endpoints()["visa"], error_classes)
    assert seen == {
        "clean": "0",
        "command": "32",
        "after read": "0",
        "execution": "16",
        "device": "8",
        "query and opc": "5",
    }


async def test_status_byte_summarises_queue_reply_and_enabled_events(
    meter: MeterSimulator,
) -> None:
    seen = await asyncio.to_thread(with_instrument, meter.endpoints()["visa"], summary_bits)
    assert seen == {
        "clean": "0",
        "reply waiting": "16",
        "error queued": "4",
        "ese": "32",
        "event summary": "36",
        "sre": "32",  # bit 6 cannot be enabled
        "service request": "100",
        "cleared": "0",
        "masks kept": "32;32",
        "errors cleared": '+0,"No error"',
    }
