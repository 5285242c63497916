"""The `memory` driver: an instrument that lives in the daemon's process.

It is a real driver, not a protocol mock: dry runs of recipes, engine tests and engine
benchmarks use it where the wire would only add noise. A channel may follow another channel
with a first-order lag so that ramps and wait-until-stable steps have something to wait for.

Its operations complete without suspending, as an in-process instrument's do; the engine gives
the loop its turns itself (see `EngineClock`).

Number channels also live in one float64 array (`read_block` is a fancy-index of it, with the
lagging channels advanced in one vectorised step); `read` and `write` keep the array and the
per-channel values in step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    Value,
    check_writable,
)
from .errors import ChannelError, InstrumentDisconnected

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

    @model_validator(mode="after")
    def _follows_known(self) -> MemoryInstrument:
        for name, channel in self.channels.items():
            if channel.follows is not None and channel.follows not in self.channels:
                raise ValueError(f"channel {name!r} follows unknown channel {channel.follows!r}")
        return self


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

    async def connect(self) -> None:
        now = self._now()
        if not self._values:
            self._values = {name: ch.initial for name, ch in self.config.channels.items()}
            self._stamps.fill(now)
        self._connected = True

    async def close(self) -> None:
        self._connected = False

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
