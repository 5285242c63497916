"""Interoperability with code nobody here wrote.

- The driver runs against an instrument defined in pyvisa-sim's YAML format (`@sim` backend).
- Plain pyvisa (no mdfd code) queries our meter simulator over TCP and over the pty.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import pyvisa

from mdfd.drivers import DriverContext, ProtocolError
from mdfd.drivers.visa import VisaDriver, VisaInstrument
from mdfd.simulators.meter import MeterSimulator

SIM_FILE = Path(__file__).with_name("pyvisa_sim_lcr.yaml")

SIM_CHANNELS: dict[str, dict[str, Any]] = {
    "capacitance": {"unit": "nF", "query": "FETC?", "field": 0},
    "loss": {"query": "FETC?", "field": 1},
    "status": {"query": "FETC?", "field": 2, "parse": "int"},
    "primary": {"query": "FETC?", "parse": "floats"},
    "frequency": {
        "unit": "Hz",
        "writable": True,
        "query": "FREQ?",
        "write": "FREQ {value:.1f}",
    },
}


def sim_instrument(resource: str, **extra: Any) -> VisaInstrument:
    return VisaInstrument.model_validate(
        {
            "driver": "visa",
            "resource": resource,
            "backend": f"{SIM_FILE}@sim",
            "init": ["*RST", "*CLS"],
            "channels": SIM_CHANNELS,
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("resource", "extra"),
    [
        ("TCPIP::10.9.8.7::5025::SOCKET", {}),
        ("ASRL4::INSTR", {"read_termination": "\r\n", "write_termination": "\r\n"}),
    ],
)
async def test_driver_against_pyvisa_sim(resource: str, extra: dict[str, Any]) -> None:
    driver = VisaDriver("lcr", sim_instrument(resource, **extra), DriverContext())
    await driver.connect()
    try:
        assert await driver.identify() == "ACME Instruments,LCR-9,88120,2.04"
        readings = await driver.read(["capacitance", "loss", "status", "primary", "frequency"])
        assert readings["capacitance"].value == 125.0
        assert readings["loss"].value == pytest.approx(0.0041)
        assert readings["status"].value == 0
        assert readings["primary"].value == [125.0, 0.0041, 0.0]
        assert readings["frequency"].value == 1000.0
        await driver.write("frequency", 2500)
        assert (await driver.read(["frequency"]))["frequency"].value == 2500.0
        # Outside the device's specs: pyvisa-sim queues a command error, the check raises.
        with pytest.raises(ProtocolError) as caught:
            await driver.write("frequency", 5)
        assert str(caught.value.reply).startswith("-100,")
        assert (await driver.read(["frequency"]))["frequency"].value == 2500.0
    finally:
        await driver.close()


def plain_pyvisa_session(resource: str) -> list[str]:
    """What any lab script does; nothing of mdfd is imported here."""
    manager = pyvisa.ResourceManager("@py")
    try:
        instrument = manager.open_resource(
            resource, read_termination="\n", write_termination="\n", timeout=2000
        )
        replies = [
            instrument.query("*IDN?"),
            instrument.query("MEAS:ALL?"),
            instrument.query("*OPC?"),
        ]
        instrument.write("SPEC:NEW 77")
        replies.append(instrument.query("SPEC?"))
        instrument.write("NO:SUCH:COMMAND")
        replies.append(instrument.query("SYST:ERR?"))
        replies.append(instrument.query("SYST:ERR?"))
        values = instrument.query_ascii_values("MEAS:ALL?")
        replies.append(str(len(values)))
        instrument.close()
        return replies
    finally:
        manager.close()


@pytest.mark.parametrize("endpoint", ["visa", "visa_serial"])
async def test_plain_pyvisa_queries_our_simulator(meter: MeterSimulator, endpoint: str) -> None:
    resource = meter.endpoints()[endpoint]
    replies = await asyncio.to_thread(plain_pyvisa_session, resource)
    identity, everything, opc, specimen, error, no_error, count = replies
    assert identity == "MDFD,SIM-LCR-3000,SN0001,1.0"
    assert len(everything.split(",")) == 5
    assert opc == "1"
    assert specimen == "77"
    assert error.startswith('-113,"Undefined header')
    assert no_error == '+0,"No error"'
    assert count == "5"
