"""The `memory` driver: an instrument that lives in the daemon's process.

It is a real driver, not a protocol mock: dry runs of recipes, engine tests and engine
benchmarks use it where the wire would only add noise. A channel may follow another channel
with a first-order lag so that ramps and wait-until-stable steps have something to wait for.

Its operations complete without suspending, as an in-process instrument's do; the engine gives
the loop its turns itself (see `EngineClock`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from math import isfinite
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from .base import (
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
        self._updated: dict[str, float] = {}
        self._connected = False
        # Read per sample by the engine's fastest loop: looked up once, not per reading.
        self._units = {name: ch.unit for name, ch in config.channels.items()}
        self._lagging = {n: ch for n, ch in config.channels.items() if ch.follows is not None}
        self._followers: dict[str, list[tuple[str, MemoryChannel]]] = {}
        for name, channel in config.channels.items():
            if channel.follows is not None:
                self._followers.setdefault(channel.follows, []).append((name, channel))

    async def connect(self) -> None:
        now = self._now()
        if not self._values:
            self._values = {name: ch.initial for name, ch in self.config.channels.items()}
            self._updated = dict.fromkeys(self.config.channels, now)
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

    async def write(self, channel: str, value: Value) -> None:
        self._require_connected()
        config = self._channel(channel)
        check_writable(self.name, channel, config, value)
        now = self._now()
        for name, other in self._followers.get(channel, ()):
            self._advance(name, other, now)
        self._values[channel] = value
        self._updated[channel] = now

    def _advance(self, name: str, channel: MemoryChannel, now: float) -> Value:
        if channel.follows is None:
            return self._values[name]
        target = self._values[channel.follows]
        current = self._values[name]
        if not isinstance(target, int | float) or not isinstance(current, int | float):
            return current
        elapsed = now - self._updated[name]
        if channel.tau <= 0.0:
            value = float(target)
        else:
            value = target + (current - target) * math.exp(-elapsed / channel.tau)
        self._values[name] = value
        self._updated[name] = now
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
