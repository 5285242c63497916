"""Configuration of a Modbus instrument: how to reach it and where each channel lives.

Validated before anything touches the wire, so a channel whose type cannot live in its table
(a float in a coil, a writable input register) is a config error with a line number, not a
Modbus exception at 3 a.m.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ..base import ChannelConfig, InstrumentConfig, Reconnect, StrictModel
from ..deprecated import rename_deprecated


class Table(StrEnum):
    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    INPUT_REGISTER = "input_register"
    HOLDING_REGISTER = "holding_register"

    @property
    def is_bit(self) -> bool:
        return self in (Table.COIL, Table.DISCRETE_INPUT)

    @property
    def is_writable(self) -> bool:
        return self in (Table.COIL, Table.HOLDING_REGISTER)


class DataType(StrEnum):
    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    FLOAT64 = "float64"

    @property
    def registers(self) -> int:
        return REGISTERS[self]


REGISTERS = {
    DataType.BOOL: 1,
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
}

Order = Literal["big", "little"]


class ModbusChannel(ChannelConfig):
    """One value in the device's address space.

    `address` is the 0-based protocol address (register 40001 in a vendor manual is
    holding_register 0). Engineering value = raw * scale + offset. A `bool` on a register
    table reads one `bit` (0 = least significant) of that register: the usual home of alarm
    and status flags.
    """

    table: Table = Table.HOLDING_REGISTER
    address: int = Field(ge=0, le=65535)
    type: DataType = DataType.UINT16
    word_order: Order = Field(default="big", description="big: most significant word first")
    byte_order: Order = Field(default="big", description="big: most significant byte first")
    scale: float = 1.0
    offset: float = 0.0
    bit: int | None = Field(default=None, ge=0, le=15)

    @model_validator(mode="after")
    def _fits_table(self) -> ModbusChannel:
        if self.table.is_bit and self.type is not DataType.BOOL:
            raise ValueError(f"a {self.table.value} holds one bit: type must be bool")
        if self.writable and not self.table.is_writable:
            raise ValueError(f"a {self.table.value} is read-only; it cannot be writable")
        if self.type is DataType.BOOL and not self.table.is_bit:
            if self.bit is None:
                raise ValueError("a bool in a register needs `bit` (0..15)")
            if self.writable:
                raise ValueError("a bit inside a register cannot be written (no atomic write)")
        elif self.bit is not None:
            raise ValueError("`bit` only applies to a bool in a register table")
        if self.type is DataType.BOOL and (self.scale != 1.0 or self.offset != 0.0):
            raise ValueError("scale and offset do not apply to bool")
        if self.scale == 0.0:
            raise ValueError("scale must not be zero")
        if self.address + self.type.registers - 1 > 65535:
            raise ValueError("the value runs past the end of the address space (65535)")
        return self

    def value_kind(self) -> Literal["number", "text", "array", "unknown"]:
        return "number"  # registers and bits: numbers and booleans only


class TcpLink(StrictModel):
    """Modbus TCP: one socket per host:port, shared by every unit behind it (gateways)."""

    type: Literal["tcp"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)


class RtuLink(StrictModel):
    """Modbus RTU on a serial line: one owner per port, shared by every unit on the bus."""

    type: Literal["rtu"]
    device: str = Field(description="serial port path, e.g. /dev/ttyUSB0")
    baudrate: int = Field(default=19200, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


Link = Annotated[TcpLink | RtuLink, Field(discriminator="type")]


class ModbusInstrument(InstrumentConfig[ModbusChannel]):
    driver: Literal["modbus"]
    link: Link
    unit: int = Field(default=1, ge=0, le=247, description="unit / slave id")
    timeout: float = Field(default=1.0, gt=0, le=60, description="seconds per request")
    reconnect: Reconnect = Field(
        default_factory=Reconnect, description="attempts and backoff to (re)open the link"
    )
    max_gap: int = Field(
        default=8,
        ge=0,
        le=124,
        description="unused registers (or bits) a coalesced read may span to save a request",
    )
    max_registers: int = Field(default=125, ge=1, le=125, description="registers per request")
    max_bits: int = Field(default=2000, ge=1, le=2000, description="coils/inputs per request")
    identity: str | None = Field(
        default=None,
        description="vendor,model,serial to report when the device offers no identification",
    )

    @model_validator(mode="before")
    @classmethod
    def _deprecated_keys(cls, data: Any) -> Any:
        """Configs written before the common `reconnect` block and single attempts load on."""
        return rename_deprecated(
            data,
            {
                "reconnect_attempts": "reconnect.attempts",
                "reconnect_backoff": "reconnect.initial",
                "reconnect_backoff_max": "reconnect.maximum",
            },
            driver="modbus",
            ignored={
                "retries": "the driver makes one attempt per call; the recipe's "
                "on_error: {retries, backoff} retries a failed read or write",
            },
        )
