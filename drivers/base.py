"""The driver contract shared by every protocol.

A driver owns one instrument. The engine only ever talks to this contract, which is what lets
a Modbus furnace, an OPC-UA skid and a SCPI meter be swept by the same recipe.
"""

from __future__ import annotations

import asyncio
import enum
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import (
    Annotated,
    Any,
    ClassVar,
    Generic,
    Literal,
    Protocol,
    TypeVar,
    runtime_checkable,
)

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from .errors import ChannelError

Value = float | int | bool | str | list[float]


class Quality(enum.StrEnum):
    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


# A `Block`'s quality codes: the position of each `Quality` in this tuple. GOOD is 0 so that
# `np.zeros(n, np.uint8)` is an all-good scan and `quality == 0` selects the good samples.
QUALITY_CODES: tuple[Quality, ...] = (Quality.GOOD, Quality.UNCERTAIN, Quality.BAD)
GOOD_CODE, UNCERTAIN_CODE, BAD_CODE = 0, 1, 2


@dataclass(slots=True)
class Reading:
    """One value of one channel. Not frozen, though nobody should change one: a frozen
    dataclass sets each field through `object.__setattr__` (510 ns a Reading against 190 ns),
    and a Reading is made for every sample of every channel."""

    value: Value
    unit: str
    timestamp: float
    quality: Quality = Quality.GOOD


def judged(value: Value, quality: Quality = Quality.GOOD) -> Quality:
    """A NaN or ±inf number is no measurement, whatever the wire said about it: BAD."""
    if value.__class__ is float and not math.isfinite(value):
        return Quality.BAD
    return quality


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo in a config must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(StrictModel):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def contains(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class ChannelConfig(StrictModel):
    """Fields every channel has; each driver extends it with its protocol fields."""

    unit: str = ""
    writable: bool = False
    limits: Limits | None = None
    description: str = ""

    def value_kind(self) -> Literal["number", "text", "array", "unknown"]:
        """What this channel's readings hold, when the config alone says so. Acquired samples
        are stored as numbers (booleans as 0/1): a recipe that acquires a text or array
        channel is refused at validation rather than losing its values; `unknown` (a server
        that declares types only at run time) is accepted, and a non-number that arrives is
        stored as an invalid sample with a warning, never dropped unseen."""
        return "unknown"


ChannelT = TypeVar("ChannelT", bound=ChannelConfig)


class Reconnect(StrictModel):
    """How every driver (re)opens a lost link, with the same keys whatever the protocol.

    Up to `attempts` tries per call that finds the link down, waiting `initial` seconds before
    the second try and doubling up to `maximum` — only while the link cannot be opened at all
    (refused, unreachable: nothing was exchanged). A peer that accepts but does not answer is
    an `InstrumentTimeout` at once. The whole call stays within the instrument's
    `timeouts.operation`; the engine alone retries the call, as its recipe's `on_error` says,
    and a driver never retries a request itself (decision 0063).
    """

    attempts: int = Field(default=4, ge=1, le=1000, description="tries to open the link")
    initial: float = Field(default=0.2, gt=0, le=600, description="seconds before the second")
    maximum: float = Field(default=5.0, gt=0, le=3600, description="longest wait between tries")

    def retrying(
        self,
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
        before_sleep: Callable[[RetryCallState], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> AsyncRetrying:
        """The tenacity loop a driver opens its link with: `attempts` tries while the error is
        one of `retry_on`, waits from `initial` doubling up to `maximum`; the last error is
        raised."""
        return AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.initial, max=self.maximum),
            retry=retry_if_exception_type(retry_on),
            before_sleep=before_sleep,
            sleep=sleep,
            reraise=True,
        )


DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|min|h)?\s*$")
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}


def _seconds(value: object) -> object:
    """A timeout as a config writes it: seconds, or `500 ms`, `5 s`, `2 min`, `1 h`. (The
    drivers import nothing of the recipes' units, so the few units a timeout needs are here.)"""
    if not isinstance(value, str):
        return value
    match = DURATION.match(value)
    if match is None:
        raise ValueError(f"expected a duration such as '5 s' or '500 ms', got {value!r}")
    return float(match.group(1)) * UNIT_SECONDS[match.group(2) or "s"]


Seconds = Annotated[float, BeforeValidator(_seconds)]


class Timeouts(StrictModel):
    """How long the engine and the daemon's health checks give one instrument, whatever its
    driver: the bounds an operator tunes to the instrument, not to the protocol.

    `connect` bounds `connect()` and `close()` (opening the link, logging in) at the start and
    end of a run and in the health checks. `operation` bounds one attempt of any other call —
    a read, a write, `identify`, a health probe — a lazy reconnect inside it included, so the
    worst case before a read fails is the same formula for every protocol
    (`mdfd.daemons.engine.retrying`). A driver's own per-request `timeout` may end an attempt
    sooner; nothing ends it later.
    """

    connect: Seconds = Field(
        default=30.0, gt=0, le=3600, description="s to open (or close) the link (or '5 s')"
    )
    operation: Seconds = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="s one read or write may take, a reconnect included (or '2 s')",
    )


class InstrumentConfig(StrictModel, Generic[ChannelT]):
    """Fields every instrument has; each driver extends it with transport fields and names
    its own channel model as the type parameter (`InstrumentConfig[ModbusChannel]`), so the
    type checker knows every channel's protocol fields without narrowing an invariant dict."""

    driver: str
    description: str = ""
    timeouts: Timeouts = Field(
        default_factory=Timeouts,
        description="connect and per-operation bounds the engine keeps, whatever the driver",
    )
    channels: dict[str, ChannelT] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class DriverContext:
    """What the daemon tells a driver about the world it runs in.

    `clock` stamps readings. It is the engine's clock: the wall clock on a real MDF, a scaled
    clock on a simulated one, so that a reading's timestamp and a recipe's dwell agree.
    """

    clock: Callable[[], float] = field(default=time.time)


@runtime_checkable
class Driver(Protocol):
    """One instrument: the contract every driver keeps, whoever wrote it.

    **Construction.** `cls(name, config, context)`, where `config` is an instance of the class's
    own `config_model` (validated before the driver exists) and `context` is the
    `DriverContext`. Constructing touches nothing: no I/O before `connect`.

    **Lifecycle.** `connect` and `close` are idempotent. After `close`, every call raises
    `InstrumentDisconnected` until `connect` is called again; `close` leaves no task or thread
    of the driver's running.

    **Single attempts.** Each call makes one attempt, bounded by the instrument's configured
    timeout, and raises a typed error when it fails. The engine owns retries and their backoff
    (it knows the recipe's `on_error` policy and whether the run is being stopped). A link that
    is lost is reopened lazily by the next call (with the driver's `reconnect` backoff between
    attempts to open it); it is never silently reopened in the background while nobody asks.

    **Errors** (`mdfd.drivers.errors`), each carrying instrument, channel, address and reply:
    - `InstrumentTimeout`: no answer within the timeout; the link may still be up. The engine
      may retry a read.
    - `InstrumentDisconnected`: the transport is gone or could not be opened; nothing was
      exchanged. The engine waits for the instrument and retries.
    - `ProtocolError`: the instrument answered with an exception, a bad status or garbage.
    - `ChannelError`: refused before the wire — unknown channel, not writable, value outside
      its limits (`check_writable`). Never retried: the recipe or config is wrong.
    - `WriteOutcomeUnknown`: a write was sent but its fate is unknown (the answer was lost or
      the link dropped after sending). Never repeated blindly: the engine fails the point and
      says so; the operator or the next setpoint decides.

    **Concurrency.** Calls come from several tasks at once — the interlock monitor reads while
    a step reads or writes — so a driver serialises what its wire needs serialised (one lock
    per connection) and answers each call with its own reply.

    **Readings.** `read` takes many channels so a protocol can batch them into few requests and
    returns one `Reading` per channel asked, stamped with `context.clock()` (the engine's clock:
    scaled on a simulated MDF) — not the instrument's or the host's own time. Values are
    `Value`: numbers, booleans, strings, or a list of floats. Acquired samples are stored as
    numbers: a channel whose config says it gives text or arrays (`ChannelConfig.value_kind`)
    is refused in an `acquire` step at validation, and a non-number that arrives anyway is
    stored as an invalid sample (NaN, counted, warned), never dropped unseen. A NaN from
    the device is passed on with quality `BAD`, never replaced. Nothing blocks the event loop:
    blocking libraries run on a thread the driver owns.

    `identify` returns vendor/model/serial for the run's provenance.
    """

    config_model: ClassVar[type[InstrumentConfig[Any]]]
    name: str

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def read(self, channels: Sequence[str]) -> dict[str, Reading]: ...

    async def write(self, channel: str, value: Value) -> None: ...

    async def identify(self) -> str: ...


class DriverFactory(Protocol):
    """What the registry hands out for a driver name: a driver class, seen by the type checker
    as `(name, config, context) -> Driver` with the model its `config` must be an instance of.
    A class satisfies it by having `config_model` and that constructor."""

    config_model: type[InstrumentConfig[Any]]

    def __call__(self, name: str, config: Any, context: DriverContext) -> Driver: ...


@runtime_checkable
class Subscribable(Protocol):
    """Drivers whose instruments push changes (OPC-UA) offer a stream instead of polling.

    `subscribed_channels` are those configured to be pushed. `stream(channels)` yields
    `(channel, reading)` as changes arrive, stamped with the injected clock. A stream survives
    a reconnect (the driver re-creates its subscription and goes on yielding) and ends when the
    driver is closed or the consumer stops iterating; a push missed while the link was down is
    not invented afterwards.
    """

    def subscribed_channels(self) -> Sequence[str]: ...

    def stream(self, channels: Sequence[str]) -> AsyncIterator[tuple[str, Reading]]: ...


@dataclass(frozen=True, slots=True)
class Block:
    """One instrument's scan as columns: what `BlockReadable.read_block` returns.

    `channels` are the names in the order asked; `values[i]` and `quality[i]` belong to
    `channels[i]`. `values` is float64, shape `(n,)`, booleans as 0/1. `quality` is uint8,
    shape `(n,)`, with the codes of `QUALITY_CODES`: 0 GOOD, 1 UNCERTAIN (the instrument
    vouches for the value only partly, e.g. OPC-UA's UncertainEngineeringUnitsExceeded; the
    value is kept, as `read` keeps it), 2 BAD (no usable value: the instrument said so, or it
    sent NaN or ±inf, or a non-number arrived). `values` is NaN exactly where the quality is
    BAD, so `values[quality == GOOD_CODE]` are the good samples and NaN-aware statistics skip
    the bad ones. `timestamp` is one stamp for the whole scan, from the injected clock
    (`DriverContext.clock`), taken when the scan's last answer arrived. Units are not repeated
    per scan: they are the channels' config.

    The arrays belong to the caller: a driver never keeps or reuses them after returning.
    """

    channels: tuple[str, ...]
    values: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    timestamp: float


@runtime_checkable
class BlockReadable(Protocol):
    """Drivers that can return a scan of number channels as arrays instead of one `Reading`
    per channel: the engine's fast path at hundreds of channels per instrument at 10 Hz.

    Implement it when a scan can be decoded in bulk (registers through numpy, one OPC-UA Read
    answer into an array); a driver without it is read through `read` and loses nothing.

    `read_block(channels)` keeps the rules of `Driver.read`: the same values (as float64) for
    the same channels; one attempt bounded by the instrument's timeout, the engine owning
    retries; the same errors for the same causes — `ChannelError` before the wire for an
    unknown channel and for one that does not hold a number (text or arrays, as its config or
    the instrument's declared type says), `InstrumentDisconnected` after `close` or when the
    link is gone, `InstrumentTimeout`, `ProtocolError` when the instrument refuses the request.
    One difference: a single value the instrument answers with a bad status does not fail the
    block (where `read` raises `ProtocolError` for it) — that position is NaN with quality
    BAD and the rest of the scan is kept, since a hundred-channel scan must not be lost to one
    broken sensor. It may run concurrently with `read`, `write` and other `read_block` calls,
    serialised on the wire as `read` is. A channel configured as subscribed is answered from
    its latest notification, as `read` answers it (polled until the first one arrives).
    """

    async def read_block(self, channels: Sequence[str]) -> Block: ...


@dataclass(frozen=True, slots=True)
class Scans:
    """Scans an instrument took on its own clock, oldest first: what `Buffered.fetch_buffer`
    returns.

    `values[k, i]` and `quality[k, i]` are scan k's value of `channels[i]`, float64 and uint8,
    with `Block`'s quality codes and its rule that a value is NaN exactly where its quality is
    BAD; `times[k]` is when scan k was taken, on the injected clock's time base. No scans (shape
    `(0, len(channels))`) is an answer too: none was taken since the last fetch.

    The arrays belong to the caller: a driver never keeps or reuses them after returning.
    """

    channels: tuple[str, ...]
    values: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    times: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.times.shape[0])


@runtime_checkable
class Buffered(Protocol):
    """Instruments that sample on their own clock into a memory the driver fetches from — a
    DAQ card's buffer, a DMM's reading memory: the engine's path for fast acquisitions, one
    round trip per many scans instead of one per scan (decision 0089).

    - `buffers(channels, rate, count)`: whether the instrument can take `count` scans of these
      channels at `rate` scans per second on its own. No I/O; the engine asks before every
      acquisition and polls (`read`/`read_block`, one round trip per scan) when the answer is
      no, so an acquisition beyond the instrument's memory or pace still runs.
    - `start_buffer(channels, rate, count)`: arm and start `count` scans, `1 / rate` apart on
      the instrument's clock, the first at once. One attempt, like every call.
    - `fetch_buffer(most)`: the scans taken since the last fetch, at most `most`, oldest first;
      none when no new scan is due yet (the engine then waits for the next one). A fetched
      scan is not fetched again. One attempt: when it fails, the scans it would have returned
      may be lost with it, so the engine stops and starts again for the scans still missing.
    - `stop_buffer()`: stop taking scans and drop those not fetched; harmless when no
      acquisition runs. The engine calls it when the step ends, however it ends.

    One buffered acquisition runs per instrument at a time. The errors are `read`'s, for the
    same causes (`ChannelError` before the wire for a channel that is unknown or holds no
    number).
    """

    def buffers(self, channels: Sequence[str], rate: float, count: int) -> bool: ...

    async def start_buffer(self, channels: Sequence[str], rate: float, count: int) -> None: ...

    async def fetch_buffer(self, most: int) -> Scans: ...

    async def stop_buffer(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BrowseEntry:
    """One variable found by browsing: its address, where it sits, its type and value."""

    node: str
    path: str
    data_type: str
    value: Value | None
    status: str
    unit: str
    writable: bool


@runtime_checkable
class Browsable(Protocol):
    """Drivers whose instruments describe themselves (OPC-UA's address space) can list the
    variables under a node, for `mdfd probe --browse` when an engineer writes a config.

    `browse(None)` starts at the instrument's root. It reads, never writes, and needs a
    connected driver; an unknown node is a `ChannelError`.
    """

    async def browse(self, node: str | None = None) -> Sequence[BrowseEntry]: ...


def check_writable(instrument: str, name: str, channel: ChannelConfig, value: Value) -> None:
    """Refuse a write before it reaches the wire: configured limits are a safety promise."""
    if not channel.writable:
        raise ChannelError(instrument, "channel is not writable", channel=name)
    if (
        channel.limits is not None
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ) and not channel.limits.contains(float(value)):
        raise ChannelError(
            instrument,
            f"value {value} outside limits [{channel.limits.min}, {channel.limits.max}]",
            channel=name,
        )
