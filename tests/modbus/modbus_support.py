"""Shared pieces of the modbus tests: the furnace's channels as a driver config sees them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mdfd.drivers.modbus import ModbusInstrument
from mdfd.simulators.furnace import FurnaceSettings, FurnaceSimulator

# Every representation of the furnace's process value, one per type and word/byte order.
PV_CHANNELS: dict[str, dict[str, Any]] = {
    "pv_int16": {"table": "input_register", "address": 0, "type": "int16", "scale": 0.1},
    "pv_abcd": {"table": "input_register", "address": 10, "type": "float32"},
    "pv_cdab": {
        "table": "input_register",
        "address": 20,
        "type": "float32",
        "word_order": "little",
    },
    "pv_badc": {
        "table": "input_register",
        "address": 22,
        "type": "float32",
        "byte_order": "little",
    },
    "pv_dcba": {
        "table": "input_register",
        "address": 24,
        "type": "float32",
        "word_order": "little",
        "byte_order": "little",
    },
    "pv_float64": {"table": "input_register", "address": 26, "type": "float64"},
    "pv_int32": {"table": "input_register", "address": 30, "type": "int32", "scale": 0.001},
}

FURNACE_CHANNELS: dict[str, dict[str, Any]] = {
    **PV_CHANNELS,
    "temperature": {"table": "input_register", "address": 10, "type": "float32", "unit": "degC"},
    "working_setpoint": {"table": "input_register", "address": 12, "type": "float32"},
    "output": {"table": "input_register", "address": 14, "type": "float32", "unit": "percent"},
    "output_x10": {"table": "input_register", "address": 2, "type": "uint16", "scale": 0.1},
    "ramping": {"table": "input_register", "address": 4, "type": "bool", "bit": 1},
    "uptime": {"table": "input_register", "address": 32, "type": "uint32", "unit": "s"},
    "setpoint": {
        "address": 10,
        "type": "float32",
        "writable": True,
        "unit": "degC",
        "limits": {"min": 0, "max": 1400},
    },
    "setpoint_x10": {"address": 0, "type": "int16", "scale": 0.1, "writable": True},
    "ramp_rate": {"address": 12, "type": "float32", "writable": True, "unit": "degC/min"},
    "running": {"table": "coil", "address": 0, "type": "bool", "writable": True},
    "high_alarm": {"table": "discrete_input", "address": 0, "type": "bool"},
    "at_setpoint": {"table": "discrete_input", "address": 3, "type": "bool"},
    "fault_latency": {"address": 900, "type": "uint16", "writable": True},
    "fault_drop": {"address": 901, "type": "uint16", "writable": True},
    "fault_exception": {"address": 902, "type": "uint16", "writable": True},
    "fault_corrupt": {"address": 903, "type": "uint16", "writable": True},
    "fault_stuck": {"address": 904, "type": "uint16", "writable": True},
}


def furnace_settings(link: Path | None, **extra: Any) -> FurnaceSettings:
    data: dict[str, Any] = {"kind": "furnace", "port": 0, "tau": 20.0, "noise": 0.0}
    if link is not None:
        data["rtu"] = {"link": str(link), "unit": 1}
    data.update(extra)
    return FurnaceSettings.model_validate(data)


def link_for(furnace: FurnaceSimulator, transport: str) -> dict[str, Any]:
    if transport == "tcp":
        return {"type": "tcp", "host": "127.0.0.1", "port": furnace.tcp_port}
    return {"type": "rtu", "device": furnace.endpoints()["rtu"]}


def instrument(
    furnace: FurnaceSimulator,
    transport: str,
    channels: dict[str, dict[str, Any]] | None = None,
    **extra: Any,
) -> ModbusInstrument:
    data: dict[str, Any] = {
        "driver": "modbus",
        "link": link_for(furnace, transport),
        "timeout": 1.0,
        "reconnect": {"attempts": 2, "initial": 0.05},
        "channels": channels or FURNACE_CHANNELS,
    }
    data.update(extra)
    return ModbusInstrument.model_validate(data)


def hold_temperature(furnace: FurnaceSimulator, value: float) -> None:
    """Park the zone at `value`: heater off, ambient equal, so the physics keeps it there."""
    zone = furnace.world.zone
    furnace.world.advance()
    zone.running = False
    zone.ambient = zone.temperature = value
