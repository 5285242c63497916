"""Configuration of a VISA instrument and its SCPI channels.

Everything that differs between two SCPI instruments is data here (resource string, backend,
terminations, serial line settings, init sequence, per-channel query / parse rule / write
template), so bringing up a new meter is a config change, not code.
"""

from __future__ import annotations

import enum
import string
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pyvisa import rname

from ..base import ChannelConfig, InstrumentConfig, Reconnect, StrictModel


class Parse(enum.StrEnum):
    """How a reply (or one field of it) becomes a value."""

    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    STRING = "string"
    FLOATS = "floats"  # every field as a float: an array channel


class Parity(enum.StrEnum):
    NONE = "none"
    ODD = "odd"
    EVEN = "even"
    MARK = "mark"
    SPACE = "space"


class FlowControl(enum.StrEnum):
    NONE = "none"
    XON_XOFF = "xon_xoff"
    RTS_CTS = "rts_cts"
    DTR_DSR = "dtr_dsr"


class SerialLine(StrictModel):
    """Settings of an `ASRL...::INSTR` resource; ignored by nothing, refused elsewhere."""

    baud_rate: int = Field(default=9600, gt=0)
    data_bits: int = Field(default=8, ge=5, le=8)
    parity: Parity = Parity.NONE
    stop_bits: float = Field(default=1, description="1, 1.5 or 2")
    flow_control: FlowControl = FlowControl.NONE

    @field_validator("stop_bits")
    @classmethod
    def _standard_stop_bits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError("stop bits are 1, 1.5 or 2")
        return value


class ErrorQueueCheck(StrictModel):
    """How to read the instrument's error queue after writes and the init sequence.

    An entry whose first comma-separated field is the integer 0 means "no error"; anything
    else is an error to report. At most `max_entries` are read per check.
    """

    query: str = "SYST:ERR?"
    max_entries: int = Field(default=20, ge=1, le=1000)


class VisaChannel(ChannelConfig):
    query: str | None = Field(default=None, description="SCPI query that reads this channel")
    parse: Parse = Parse.FLOAT
    field: int | None = Field(default=None, ge=0, description="0-based field of the reply")
    separator: str = Field(default=",", min_length=1)
    write: str | None = Field(
        default=None, description="SCPI command template, e.g. 'SOUR:VOLT {value:.3f}'"
    )

    def value_kind(self) -> Literal["number", "text", "array", "unknown"]:
        if self.parse is Parse.STRING:
            return "text"
        if self.parse is Parse.FLOATS:
            return "array"
        return "number"

    @field_validator("write")
    @classmethod
    def _template(cls, template: str | None) -> str | None:
        if template is None:
            return None
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        if names != {"value"}:
            raise ValueError("a write template uses exactly the placeholder {value}")
        return template

    @model_validator(mode="after")
    def _usable(self) -> VisaChannel:
        if self.writable and self.write is None:
            raise ValueError("a writable channel needs a `write` template")
        if self.write is not None and not self.writable:
            raise ValueError("a channel with a `write` template must be `writable: true`")
        if self.query is None and not self.writable:
            raise ValueError("a channel needs a `query`, a `write` template, or both")
        if self.parse is Parse.FLOATS and self.field is not None:
            raise ValueError("`parse: floats` reads every field; drop `field`")
        return self


class VisaInstrument(InstrumentConfig[VisaChannel]):
    driver: Literal["visa"]
    resource: str = Field(description="VISA resource string, e.g. TCPIP::10.0.0.5::5025::SOCKET")
    backend: str = Field(
        default="@py",
        description="pyvisa backend: '@py' (pyvisa-py), '@ivi', 'file.yaml@sim', a library path",
    )
    read_termination: str = "\n"
    write_termination: str = "\n"
    encoding: str = "ascii"
    timeout: float = Field(default=2.0, gt=0, le=3600, description="seconds per I/O operation")
    open_timeout: float = Field(default=5.0, gt=0, le=3600)
    serial: SerialLine | None = None
    init: list[str] = Field(default_factory=list, description="commands written after opening")
    error_queue: ErrorQueueCheck | None = ErrorQueueCheck()
    identity_query: str = "*IDN?"
    reconnect: Reconnect = Field(default_factory=Reconnect)
    queries_per_message: int = Field(
        default=1,
        ge=1,
        le=64,
        description="channel queries joined into one program message ('MEAS:CAP?;:MEAS:LOSS?'),"
        " answered in one round trip; 1 sends each query alone, for instruments that cannot",
    )

    @field_validator("resource")
    @classmethod
    def _resource(cls, resource: str) -> str:
        try:
            rname.parse_resource_name(resource)
        except rname.InvalidResourceName as exc:
            raise ValueError(str(exc)) from None
        return resource

    @model_validator(mode="after")
    def _serial_only_on_asrl(self) -> VisaInstrument:
        if self.serial is not None and not self.is_serial:
            raise ValueError("`serial` settings apply to ASRL resources only")
        return self

    @model_validator(mode="after")
    def _socket_framing(self) -> VisaInstrument:
        if not self.read_termination and isinstance(
            rname.parse_resource_name(self.resource), rname.TCPIPSocket
        ):
            raise ValueError(
                "a SOCKET resource needs a `read_termination`: a byte stream has no other end"
                " of message"
            )
        return self

    @model_validator(mode="after")
    def _single_units(self) -> VisaInstrument:
        if self.queries_per_message > 1:
            for name, channel in self.channels.items():
                if channel.query is not None and ";" in channel.query:
                    raise ValueError(
                        f"channel {name!r}: a query that is itself a compound message cannot be"
                        " joined with others (its reply splits into more units); use"
                        " `queries_per_message: 1`"
                    )
        return self

    @property
    def is_serial(self) -> bool:
        return isinstance(rname.parse_resource_name(self.resource), rname.ASRLInstr)
