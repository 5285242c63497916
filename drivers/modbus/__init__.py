"""The `modbus` driver (Modbus TCP and RTU, pymodbus 3.16)."""

from .config import DataType, ModbusChannel, ModbusInstrument, RtuLink, Table, TcpLink
from .driver import ModbusDriver

__all__ = [
    "DataType",
    "ModbusChannel",
    "ModbusDriver",
    "ModbusInstrument",
    "RtuLink",
    "Table",
    "TcpLink",
]
