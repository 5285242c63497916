"""The `modbus` driver (Modbus TCP and RTU, pymodbus 3.16).

`ModbusDriver` is imported on first use: validating a config imports only `.config` (the
`mdfd.driver_configs` entry point), and pymodbus stays off the daemon's way to READY (ADR 0075).
"""

from typing import TYPE_CHECKING

from .config import DataType, ModbusChannel, ModbusInstrument, RtuLink, Table, TcpLink

if TYPE_CHECKING:
    from .driver import ModbusDriver


def __getattr__(name: str) -> object:
    if name == "ModbusDriver":
        from .driver import ModbusDriver

        return ModbusDriver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DataType",
    "ModbusChannel",
    "ModbusDriver",
    "ModbusInstrument",
    "RtuLink",
    "Table",
    "TcpLink",
]
