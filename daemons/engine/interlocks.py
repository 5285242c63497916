"""Interlocks: a channel above or below its bound stops the run in the safe state.

Every reading the engine takes is checked as it arrives, in every step; between readings a
monitor polls the interlocked channels so a dwell of hours is guarded too. The monitor polls
only the channels nothing has checked for a period: a channel an acquisition is reading (or
fetching in blocks from an instrument sampling on its own clock, which a query could disturb)
is already checked as often, by the same check. The check works on
an instrument's values as an array: per read plan the guard works out once which positions are
interlocked and their tightest bounds, so a scan of a thousand channels costs two numpy
comparisons; only a value past a bound goes on to find the interlock and its message.

An interlock that cannot be read cannot protect anything: the first failed poll is a warning,
and a channel left unverified for `safety.unverifiable_after` wall seconds (faults and
reconnects happen in wall time, whatever the simulation's time scale) stops the run like a
breach. A reading that is no number (NaN, infinite: an open thermocouple, an overrange, a
device's "no value") verifies nothing: to the guard it is a failed read (an infinite value past
a bound still trips it).
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import structlog

from mdfd.daemons.core.config import Interlock
from mdfd.drivers import InstrumentError

from .instruments import BlockCheck, Instruments

MONITOR_PERIOD_SECONDS = 0.25


class InterlockBreach(Exception):
    def __init__(self, interlock: Interlock, value: float, bound: str) -> None:
        self.interlock = interlock
        self.value = value
        self.bound = bound
        note = f" ({interlock.message})" if interlock.message else ""
        super().__init__(f"interlock: {interlock.channel} = {value:g} is {bound}{note}")


class InterlockUnverifiable(Exception):
    def __init__(self, channels: list[str], seconds: float, error: str) -> None:
        self.channels = channels
        super().__init__(
            f"interlock unverifiable: {', '.join(channels)} not read for {seconds:.1f} s"
            f" (last error: {error})"
        )


@dataclass(frozen=True)
class Unverified:
    """An interlocked channel the monitor failed to read, as status and metrics show it."""

    channel: str
    seconds: float
    error: str

    def as_dict(self) -> dict[str, object]:
        return {"channel": self.channel, "seconds": round(self.seconds, 1), "error": self.error}


class InterlockGuard:
    def __init__(
        self,
        interlocks: list[Interlock],
        instruments: Instruments,
        unverifiable_after: float | None = None,
        on_change: Callable[[list[Unverified]], None] | None = None,
    ) -> None:
        self._by_channel: dict[str, list[Interlock]] = {}
        for interlock in interlocks:
            if interlock.channel.partition(".")[0] in instruments.drivers:
                self._by_channel.setdefault(interlock.channel, []).append(interlock)
        self._instruments = instruments
        self._unverifiable_after = unverifiable_after
        self._on_change = on_change or (lambda unverified: None)
        self.breach: InterlockBreach | InterlockUnverifiable | None = None
        self._tripped = asyncio.Event()
        self._now = asyncio.get_running_loop().time
        started = self._now()
        self._verified = dict.fromkeys(self._by_channel, started)  # or when the guard began
        self._checked = dict.fromkeys(self._by_channel, -math.inf)  # a value was checked
        self._failing: dict[str, str] = {}
        instruments.on_block(self)

    @property
    def channels(self) -> list[str]:
        return list(self._by_channel)

    def plan(self, channels: tuple[str, ...]) -> BlockCheck | None:
        """The check of one instrument's values in `channels` order (see `BlockChecks`)."""
        at = [i for i, channel in enumerate(channels) if channel in self._by_channel]
        if not at:
            return None
        watched = [channels[i] for i in at]
        positions = np.array(at, dtype=np.intp)
        interlocks = [self._by_channel[channel] for channel in watched]
        above = np.array(
            [
                min((i.above for i in ils if i.above is not None), default=math.inf)
                for ils in interlocks
            ]
        )
        below = np.array(
            [
                max((i.below for i in ils if i.below is not None), default=-math.inf)
                for ils in interlocks
            ]
        )

        def check(values: np.ndarray) -> None:
            now = self._now()
            seen = values[..., positions]
            valued = np.isfinite(seen)
            if valued.ndim == 2:  # a block of scans: a channel with a number in any of them
                valued = valued.any(axis=0)
            read = watched if valued.all() else list(itertools.compress(watched, valued.tolist()))
            for channel in read:
                self._verified[channel] = self._checked[channel] = now
            if self._failing:
                self._verified_again(read)
            if (seen > above).any() or (seen < below).any():
                for scan in np.atleast_2d(seen).tolist():  # the first breach in time trips
                    for channel, value in zip(watched, scan, strict=True):
                        self._judge(channel, value)

        return check

    def _verified_again(self, channels: list[str]) -> None:
        again = [c for c in channels if self._failing.pop(c, None) is not None]
        for channel in again:
            structlog.get_logger().warning("interlock verified again", channel=channel)
        if again:
            self._on_change(self.unverified())

    def _judge(self, channel: str, value: float) -> None:
        """A value past the bounds: which interlock, and trip (the first breach is kept)."""
        for interlock in self._by_channel[channel]:
            bound = interlock.breached_by(value)
            if bound is not None and self.breach is None:
                self._trip(InterlockBreach(interlock, value, bound))
                structlog.get_logger().error(
                    "interlock breached",
                    channel=channel,
                    value=value,
                    bound=bound,
                    message=interlock.message,
                )

    def _trip(self, breach: InterlockBreach | InterlockUnverifiable) -> None:
        if self.breach is None:
            self.breach = breach
            self._tripped.set()

    def unverified(self) -> list[Unverified]:
        """The interlocked channels whose last poll failed, with how long they went unread."""
        now = self._now()
        return [
            Unverified(channel, now - self._verified[channel], error)
            for channel, error in self._failing.items()
        ]

    def raise_if_breached(self) -> None:
        if self.breach is not None:
            raise self.breach

    async def tripped(self) -> InterlockBreach | InterlockUnverifiable:
        await self._tripped.wait()
        assert self.breach is not None
        return self.breach

    async def monitor(self) -> None:
        """Poll interlocked channels until cancelled or tripped."""
        if not self._by_channel:
            return
        # One read per instrument: a failing instrument must not cancel (and so leave
        # unverified) the reading of a healthy one.
        groups: dict[str, list[str]] = {}
        for channel in self._by_channel:
            groups.setdefault(channel.partition(".")[0], []).append(channel)
        while self.breach is None:
            await asyncio.gather(*(self._poll(channels) for channels in groups.values()))
            await asyncio.sleep(MONITOR_PERIOD_SECONDS)

    async def _poll(self, channels: list[str]) -> None:
        """Read those of `channels` not checked for a monitor period (none: no request).

        A poll is bounded by `unverifiable_after` as well as by the instruments' operation
        timeouts, so a read hanging in a driver cannot hide an interlock for longer than a
        failing one would."""
        began = self._now()
        channels = [c for c in channels if began - self._checked[c] >= MONITOR_PERIOD_SECONDS]
        if not channels:
            return
        try:
            async with asyncio.timeout(self._unverifiable_after):
                await self._instruments.read(channels)
        except (InstrumentError, TimeoutError) as exc:
            self._poll_failed(channels, began, str(exc) or type(exc).__name__)
            return
        valueless = [c for c in channels if self._verified[c] < began]
        if valueless:  # read, but no number to hold against the bounds (NaN, infinite, text)
            self._poll_failed(valueless, began, "the instrument gave no number")

    def _poll_failed(self, channels: list[str], began: float, error: str) -> None:
        """Channels not read since the poll began are unverified; past the limit, trip."""
        stale = [c for c in channels if self._verified[c] < began]
        fresh = [c for c in stale if c not in self._failing]
        for channel in stale:
            self._failing[channel] = error
        log = structlog.get_logger()
        if fresh:
            log.warning(
                "interlock unverifiable",
                channels=fresh,
                error=error,
                stops_after_s=self._unverifiable_after,
            )
            self._on_change(self.unverified())
        if self._unverifiable_after is None or not stale:
            return
        oldest = min(self._verified[c] for c in stale)
        unread = self._now() - oldest
        if unread >= self._unverifiable_after:
            breach = InterlockUnverifiable(stale, unread, error)
            log.error("interlock unverifiable too long, stopping the run", error=str(breach))
            self._trip(breach)
