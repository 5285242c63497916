"""Configuration of a VISA instrument and its SCPI channels.

Everything that differs between two SCPI instruments is data here (resource string, backend,
terminations, serial line settings, init sequence, per-channel query / parse rule / write
template, the commands of a buffered acquisition), so bringing up a new meter is a config
change, not code.
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


def placeholders(template: str) -> set[str]:
    """The names a Python format template fills (`'SAMP:COUN {count:d}'` -> {'count'})."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _fills(template: str, allowed: set[str], **example: float) -> str:
    """`template` if it uses only `allowed` placeholders and formats the `example` values
    (a spec such as `{interval:d}` that would fail on the wire fails here instead)."""
    names = placeholders(template)
    if not names <= allowed:
        unknown = ", ".join(sorted(names - allowed))
        given = ", ".join(f"{{{name}}}" for name in sorted(allowed)) or "none"
        raise ValueError(f"{template!r}: unknown placeholder {unknown} (allowed: {given})")
    try:
        template.format(**example)
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"{template!r} cannot be filled: {exc}") from None
    return template


class OverflowCheck(StrictModel):
    """How to learn that the instrument's memory overflowed and lost its oldest readings,
    after which the times of the scans fetched are not known any more (they are counted from
    the start): an integer register whose `mask` bits say so, read after every fetch."""

    query: str = Field(description="e.g. 'STAT:QUES?' (Keysight: read and cleared)")
    mask: int = Field(ge=1, description="bits that mean readings were lost, e.g. 16384")


START_PLACEHOLDERS = {"count", "interval", "rate"}


class BufferConfig(StrictModel):
    """The instrument's reading memory, for buffered acquisitions of one channel.

    `start` arms and starts `{count}` samples, `{interval}` seconds (= 1 / `{rate}`) apart,
    the first at once; `fetch` reads and erases at most `{most}` readings, oldest first, as
    an IEEE 488.2 definite-length block (`#15 1,2,3`) or a plain comma-separated list (empty
    when none); `stop` stops the run. The bounds are the instrument's, so that the driver never
    asks what it cannot do: `max_rate` and `max_count` its fastest pacing and its largest
    sample count; `max_fetch` the readings asked per fetch, which bounds a reply's size (about
    16 bytes a reading; the socket transport reads replies up to 16 MiB).
    """

    channel: str = Field(description="the number channel the instrument samples into memory")
    max_rate: float = Field(gt=0, le=1e7, description="scans/s the instrument can take")
    max_count: int = Field(default=1_000_000, ge=1, description="largest sample count")
    max_fetch: int = Field(default=10_000, ge=1, le=1_000_000, description="readings per fetch")
    start: list[str] = Field(min_length=1, description="commands; the last one starts the run")
    fetch: str = Field(description="query template with {most}, e.g. 'R? {most}'")
    stop: list[str] = Field(min_length=1, description="commands that stop the run")
    overflow: OverflowCheck | None = None

    @field_validator("start")
    @classmethod
    def _start_templates(cls, start: list[str]) -> list[str]:
        for template in start:
            _fills(template, START_PLACEHOLDERS, count=1, interval=0.001, rate=1000.0)
        used = set().union(*(placeholders(template) for template in start))
        if "count" not in used or not used & {"interval", "rate"}:
            raise ValueError("the start commands must set {count} and {interval} or {rate}")
        return start

    @field_validator("fetch")
    @classmethod
    def _fetch_template(cls, fetch: str) -> str:
        if placeholders(_fills(fetch, {"most"}, most=1)) != {"most"}:
            raise ValueError(f"{fetch!r}: the fetch query must ask for at most {{most}} readings")
        return fetch

    @field_validator("stop")
    @classmethod
    def _stop_commands(cls, stop: list[str]) -> list[str]:
        for command in stop:
            _fills(command, set())
        return stop

    def start_commands(self, rate: float, count: int) -> list[str]:
        values = {"count": count, "interval": 1.0 / rate, "rate": rate}
        return [template.format(**values) for template in self.start]


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
        if placeholders(template) != {"value"}:
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
    buffer: BufferConfig | None = Field(
        default=None, description="the reading memory, for buffered acquisitions (optional)"
    )
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

    @model_validator(mode="after")
    def _buffered_channel(self) -> VisaInstrument:
        if self.buffer is None:
            return self
        channel = self.channels.get(self.buffer.channel)
        if channel is None:
            known = ", ".join(sorted(self.channels))
            raise ValueError(f"buffer.channel {self.buffer.channel!r} is not a channel ({known})")
        if channel.value_kind() != "number":
            raise ValueError(
                f"buffer.channel {self.buffer.channel!r} must hold a number (parse float, int or"
                f" bool), not {channel.parse.value}"
            )
        return self

    @property
    def is_serial(self) -> bool:
        return isinstance(rname.parse_resource_name(self.resource), rname.ASRLInstr)
