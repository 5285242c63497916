"""Helpers of the visa driver tests: channel set, configs, resource strings."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mdfd.drivers.visa import VisaInstrument
from mdfd.simulators.meter import MeterSettings, MeterSimulator

CHANNELS: dict[str, dict[str, Any]] = {
    "capacitance": {"unit": "nF", "query": "MEAS:CAP?"},
    "loss": {"unit": "dimensionless", "query": "MEAS:LOSS?"},
    "resistivity": {"unit": "microohm*cm", "query": "MEAS:RES?"},
    "hardness": {"unit": "HV", "query": "MEAS:HARD?"},
    "colour_strength": {"unit": "dimensionless", "query": "MEAS:KS?"},
    "hardness_of_all": {"unit": "HV", "query": "MEAS:ALL?", "field": 3},
    "all": {"query": "MEAS:ALL?", "parse": "floats"},
    "identity_model": {"query": "*IDN?", "field": 1, "parse": "string"},
    "specimen": {
        "writable": True,
        "limits": {"min": 0, "max": 1_000_000},
        "query": "SPEC?",
        "parse": "int",
        "write": "SPEC:NEW {value:d}",
    },
    # No driver-side limits: the instrument itself refuses out-of-range values (1..100).
    "averaging": {
        "writable": True,
        "query": "SENS:AVER:COUN?",
        "parse": "int",
        "write": "SENS:AVER:COUN {value}",
    },
    "bogus": {"writable": True, "write": "FROB {value}"},
}


# The meter's reading memory as a Keysight 34465A's is driven (the sim paces by SAMP:TIM only).
BUFFER: dict[str, Any] = {
    "channel": "resistivity",
    "max_rate": 50_000,
    "start": [
        "CONF:RES",
        "TRIG:SOUR IMM",
        "SAMP:SOUR TIM",
        "SAMP:COUN {count:d}",
        "SAMP:TIM {interval:.9g}",
        "INIT",
    ],
    "fetch": "R? {most:d}",
    "stop": ["ABOR"],
    "overflow": {"query": "STAT:QUES?", "mask": 16384},
}


def instrument(resource: str, **overrides: Any) -> VisaInstrument:
    spec: dict[str, Any] = {
        "driver": "visa",
        "resource": resource,
        "timeout": 1.0,
        "init": ["*RST", "*CLS"],
        "reconnect": {"attempts": 4, "initial": 0.02, "maximum": 0.1},
        "channels": CHANNELS,
    }
    spec.update(overrides)
    return VisaInstrument.model_validate(spec)


def meter_settings(link: Path, port: int = 0) -> MeterSettings:
    return MeterSettings(kind="meter", port=port, link=link)


def resource_of(meter: MeterSimulator, transport: str) -> str:
    return meter.endpoints()["visa" if transport == "tcp" else "visa_serial"]


SERIAL_LINE = {"baud_rate": 115200, "parity": "none", "stop_bits": 1, "flow_control": "none"}


def driver_config(meter: MeterSimulator, transport: str, **overrides: Any) -> VisaInstrument:
    if transport == "serial":
        overrides.setdefault("serial", SERIAL_LINE)
    return instrument(resource_of(meter, transport), **overrides)


def assert_follow_specimen(readings: dict, names: list[str], meter: object) -> None:
    """The five measurement channels agree with the simulated specimen within noise."""
    specimen = meter.meter.world.specimen  # type: ignore[attr-defined]
    truth = [
        specimen.capacitance_nf(),
        specimen.dissipation_factor(),
        specimen.resistivity_uohm_cm(),
        specimen.hardness_hv(),
        specimen.colour_strength(),
    ]
    for name, expected in zip(names, truth, strict=True):
        value = readings[name].value
        assert isinstance(value, float)
        assert math.isclose(value, expected, rel_tol=0.02), (name, value, expected)
