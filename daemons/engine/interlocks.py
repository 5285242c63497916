"""Interlocks: a channel above or below its bound stops the run in the safe state.

Every reading the engine takes is checked as it arrives, in every step; between readings a
monitor polls the interlocked channels so a dwell of hours is guarded too.
"""

from __future__ import annotations

import asyncio

import structlog

from mdfd.drivers import InstrumentError, Reading

from ..config import Interlock
from .instruments import Instruments

MONITOR_PERIOD_SECONDS = 0.25


class InterlockBreach(Exception):
    def __init__(self, interlock: Interlock, value: float, bound: str) -> None:
        self.interlock = interlock
        self.value = value
        self.bound = bound
        note = f" ({interlock.message})" if interlock.message else ""
        super().__init__(f"interlock: {interlock.channel} = {value:g} is {bound}{note}")


class InterlockGuard:
    def __init__(self, interlocks: list[Interlock], instruments: Instruments) -> None:
        self._by_channel: dict[str, list[Interlock]] = {}
        for interlock in interlocks:
            if interlock.channel.partition(".")[0] in instruments.drivers:
                self._by_channel.setdefault(interlock.channel, []).append(interlock)
        self._instruments = instruments
        self.breach: InterlockBreach | None = None
        self._tripped = asyncio.Event()
        instruments.on_reading(self.check, self._by_channel)

    @property
    def channels(self) -> list[str]:
        return list(self._by_channel)

    def check(self, channel: str, reading: Reading) -> None:
        value = reading.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        for interlock in self._by_channel.get(channel, ()):
            bound = interlock.breached_by(float(value))
            if bound is not None and self.breach is None:
                self.breach = InterlockBreach(interlock, float(value), bound)
                structlog.get_logger().error(
                    "interlock breached",
                    channel=channel,
                    value=value,
                    bound=bound,
                    message=interlock.message,
                )
                self._tripped.set()

    def raise_if_breached(self) -> None:
        if self.breach is not None:
            raise self.breach

    async def tripped(self) -> InterlockBreach:
        await self._tripped.wait()
        assert self.breach is not None
        return self.breach

    async def monitor(self) -> None:
        """Poll interlocked channels until cancelled; read errors are left to the steps."""
        if not self._by_channel:
            return
        while self.breach is None:
            try:
                await self._instruments.read(self.channels)
            except (InstrumentError, TimeoutError) as exc:
                structlog.get_logger().debug("interlock poll failed", error=str(exc))
            await asyncio.sleep(MONITOR_PERIOD_SECONDS)
