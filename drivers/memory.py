"""The `memory` driver: an instrument that lives in the daemon's process.

It is a real driver, not a protocol mock: dry runs of recipes, engine tests and engine
benchmarks use it where the wire would only add noise. A channel may follow another channel
with a first-order lag so that ramps and wait-until-stable steps have something to wait for.

Its operations complete without suspending, as an in-process instrument's do; the engine gives
the loop its turns itself (see `EngineClock`).

Number channels also live in one float64 array (`read_block` is a fancy-index of it, with the
lagging channels advanced in one vectorised step); `read` and `write` keep the array and the
per-channel values in step.

Configured with `buffer: true` it is also `Buffered`, like a DAQ card: started at a rate, it
has taken the scans due on the injected clock since the start (the first at once), and a fetch
hands over those not fetched
yet as arrays — a lagging channel's value at each scan's own time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from math import isfinite
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from .base import (
    BAD_CODE,
    Block,
    ChannelConfig,
    DriverContext,
    InstrumentConfig,
    Quality,
    Reading,
    Scans,
    Value,
    check_writable,
)
from .errors import ChannelError, InstrumentDisconnected, ProtocolError

GOOD, BAD = Quality.GOOD, Quality.BAD


class MemoryChannel(ChannelConfig):
    initial: float | int | bool | str = 0.0
    follows: str | None = Field(
        default=None, description="channel whose value this one approaches with lag `tau`"
    )
    tau: float = Field(default=0.0, ge=0.0, description="time constant in seconds")

    def value_kind(self) -> Literal["number", "text", "array", "unknown"]:
        return "text" if isinstance(self.initial, str) else "number"


class MemoryInstrument(InstrumentConfig[MemoryChannel]):
    driver: Literal["memory"]
    identity: str = "mdfd,memory,0,1.0"
    buffer: bool = Field(
        default=False,
        description="sample on its own clock like a DAQ card: acquisitions of its number "
        "channels fetch blocks of scans (`Buffered`) instead of reading scan by scan",
    )

    @model_validator(mode="after")
    def _follows_known(self) -> MemoryInstrument:
        for name, channel in self.channels.items():
            if channel.follows is not None and channel.follows not in self.channels:
                raise ValueError(f"channel {name!r} follows unknown channel {channel.follows!r}")
        return self


@dataclass(slots=True)
class _Buffering:
    """A buffered acquisition under way: `count` scans of columns `rows`, `1 / rate` apart
    from `start`, of which `fetched` were handed over."""

    channels: tuple[str, ...]
    rows: npt.NDArray[np.intp]
    rate: float
    count: int
    start: float
    fetched: int = 0


class MemoryDriver:
    config_model: ClassVar[type[InstrumentConfig]] = MemoryInstrument

    def __init__(self, name: str, config: MemoryInstrument, context: DriverContext) -> None:
        self.name = name
        self.config = config
        self._context = context
        self._values: dict[str, Value] = {}
        self._connected = False
        # Read per sample by the engine's fastest loop: looked up once, not per reading.
        self._units = {name: ch.unit for name, ch in config.channels.items()}
        self._lagging = {n: ch for n, ch in config.channels.items() if ch.follows is not None}
        self._followers: dict[str, list[tuple[str, MemoryChannel]]] = {}
        for name, channel in config.channels.items():
            if channel.follows is not None:
                self._followers.setdefault(channel.follows, []).append((name, channel))
        # The columns: every number channel's value and the time it was last advanced.
        numbers = [n for n, ch in config.channels.items() if ch.value_kind() == "number"]
        self._column = {name: i for i, name in enumerate(numbers)}
        self._numbers = np.array([float(config.channels[n].initial) for n in numbers])
        self._stamps = np.zeros(len(numbers))
        lagging = [
            n for n in numbers if n in self._lagging and self._lagging[n].follows in self._column
        ]
        self._lag_rows = np.array([self._column[n] for n in lagging], dtype=np.intp)
        self._lag_targets = np.array(
            [self._column[self._lagging[n].follows or ""] for n in lagging], dtype=np.intp
        )
        self._lag_taus = np.array([self._lagging[n].tau for n in lagging])
        self._blocks: dict[tuple[str, ...], npt.NDArray[np.intp]] = {}
        self._buffering: _Buffering | None = None

    async def connect(self) -> None:
        now = self._now()
        if not self._values:
            self._values = {name: ch.initial for name, ch in self.config.channels.items()}
            self._stamps.fill(now)
        self._connected = True

    async def close(self) -> None:
        self._connected = False
        self._buffering = None

    async def identify(self) -> str:
        return self.config.identity

    async def read(self, channels: Sequence[str]) -> dict[str, Reading]:
        if not self._connected:
            raise InstrumentDisconnected(self.name, "not connected")
        now = self._context.clock()
        units, values, lagging = self._units, self._values, self._lagging
        out: dict[str, Reading] = {}
        for name in channels:
            if name in lagging:
                value = self._advance(name, lagging[name], now)
            elif name in units:
                value = values[name]
            else:
                raise ChannelError(self.name, "no such channel", channel=name)
            # `drivers.base.judged`, inlined: this loop is the dry run's and benchmarks' hot path.
            good = value.__class__ is not float or isfinite(value)
            out[name] = Reading(value, units[name], now, GOOD if good else BAD)
        return out

    async def read_block(self, channels: Sequence[str]) -> Block:
        """The scan as columns (`BlockReadable`): one fancy-index of the number array."""
        if not self._connected:
            raise InstrumentDisconnected(self.name, "not connected")
        key = tuple(channels)
        rows = self._blocks.get(key)
        if rows is None:
            rows = self._blocks[key] = self._rows(key)
        now = self._context.clock()
        if self._lag_rows.size:
            self._advance_lagging(now)
        values = self._numbers.take(rows)
        finite = np.isfinite(values)
        if finite.all():  # the usual scan: nothing to mark, no masked assignment
            return Block(key, values, np.zeros(len(key), np.uint8), now)
        bad = ~finite
        values[bad] = np.nan
        return Block(key, values, bad.astype(np.uint8) * np.uint8(BAD_CODE), now)

    def buffers(self, channels: Sequence[str], rate: float, count: int) -> bool:
        """Any number channels, at any rate, any count, when configured with `buffer: true`."""
        return (
            self.config.buffer
            and rate > 0
            and count >= 1
            and all(name in self._column for name in channels)
        )

    async def start_buffer(self, channels: Sequence[str], rate: float, count: int) -> None:
        self._require_connected()
        key = tuple(channels)
        self._buffering = _Buffering(key, self._rows(key), rate, count, self._now())

    async def fetch_buffer(self, most: int) -> Scans:
        """The scans due by now and not fetched yet, at most `most`; a lagging channel's value
        at each scan's time (its target held where it stood at the fetch)."""
        self._require_connected()
        run = self._buffering
        if run is None:
            raise ProtocolError(self.name, "no buffered acquisition started")
        due = min(run.count, math.floor((self._now() - run.start) * run.rate) + 1)
        n = max(0, min(most, due - run.fetched))
        times = run.start + (run.fetched + np.arange(n)) / run.rate
        run.fetched += n
        values = np.tile(self._numbers.take(run.rows), (n, 1))
        if n and self._lag_rows.size:
            self._lag_at(times, run.rows, values)
        quality = np.zeros(values.shape, np.uint8)
        finite = np.isfinite(values)
        if not finite.all():
            bad = ~finite
            values[bad] = np.nan
            quality[bad] = BAD_CODE
        return Scans(run.channels, values, quality, times)

    async def stop_buffer(self) -> None:
        self._buffering = None

    def _lag_at(
        self, times: npt.NDArray[np.float64], rows: npt.NDArray[np.intp], values: np.ndarray
    ) -> None:
        """The lagging channels among `rows` at each of `times` (into `values`), and their
        state advanced to the last of them."""
        for lag, row in enumerate(self._lag_rows.tolist()):
            columns = np.flatnonzero(rows == row)
            if not columns.size:
                continue
            target = self._numbers[self._lag_targets[lag]]
            tau = float(self._lag_taus[lag])
            elapsed = times - self._stamps[row]
            decay = np.exp(-elapsed / tau) if tau > 0.0 else np.zeros_like(elapsed)
            series = target + (self._numbers[row] - target) * decay
            values[:, columns] = series[:, None]
            self._numbers[row] = series[-1]
            self._stamps[row] = times[-1]

    def _rows(self, channels: tuple[str, ...]) -> npt.NDArray[np.intp]:
        """Each asked channel's column; a channel that is not a number is refused."""
        rows = []
        for name in channels:
            if name not in self._column:
                reason = "not a number channel" if name in self._units else "no such channel"
                raise ChannelError(self.name, reason, channel=name)
            rows.append(self._column[name])
        return np.array(rows, dtype=np.intp)

    def _advance_lagging(self, now: float) -> None:
        """`_advance` for every lagging channel at once (targets as they were before)."""
        rows, tau = self._lag_rows, self._lag_taus
        target = self._numbers[self._lag_targets]
        elapsed = now - self._stamps[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            decay = np.where(tau > 0.0, np.exp(-elapsed / np.where(tau > 0.0, tau, 1.0)), 0.0)
        self._numbers[rows] = target + (self._numbers[rows] - target) * decay
        self._stamps[rows] = now

    async def write(self, channel: str, value: Value) -> None:
        self._require_connected()
        config = self._channel(channel)
        check_writable(self.name, channel, config, value)
        now = self._now()
        for name, other in self._followers.get(channel, ()):
            self._advance(name, other, now)
        self._values[channel] = value
        if channel in self._column:
            row = self._column[channel]
            number = isinstance(value, int | float)
            self._numbers[row] = float(value) if number else math.nan  # type: ignore[arg-type]
            self._stamps[row] = now

    def _advance(self, name: str, channel: MemoryChannel, now: float) -> Value:
        """A lagging channel's value now. Number channels advance in the array, which
        `read_block` advances too, so both ways of reading see one state."""
        if channel.follows is None:
            return self._values[name]
        row, target_row = self._column.get(name), self._column.get(channel.follows)
        if row is None or target_row is None:
            return self._values[name]  # a text channel does not lag
        target = float(self._numbers[target_row])
        current = float(self._numbers[row])
        elapsed = now - float(self._stamps[row])
        if channel.tau <= 0.0:
            value = target
        else:
            value = target + (current - target) * math.exp(-elapsed / channel.tau)
        self._numbers[row] = value
        self._stamps[row] = now
        return value

    def _channel(self, name: str) -> MemoryChannel:
        try:
            return self.config.channels[name]
        except KeyError:
            raise ChannelError(self.name, "no such channel", channel=name) from None

    def _require_connected(self) -> None:
        if not self._connected:
            raise InstrumentDisconnected(self.name, "not connected")

    def _now(self) -> float:
        return self._context.clock()
