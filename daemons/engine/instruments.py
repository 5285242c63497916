"""The MDF's instruments as the engine sees them: drivers by name, channels as `inst.channel`.

Reads of many channels are grouped per instrument so each driver can batch them; instruments
are read concurrently. Every reading passes the hooks (the interlock guard) before anyone else
sees it. A list of channels read again and again (an acquisition's scans) gets a `Reader` that
has worked out the grouping and the hooks once.

Every driver call is one attempt bounded by its instrument's `timeouts` (configuration, not
constants): `connect` for opening, `operation` for a read or a write, a driver's lazy reconnect
inside the call included. A read or a write on its own gets its own `asyncio.timeout`; the
scans of an acquisition share one timeout context that `Reader.read_within` arms before each
read and disarms after it (`reschedule`), so the deadline is per read but the context is made
once per step (ADR 0056). A failed attempt is repeated only by the engine's retry owner,
`retrying` (ADR 0063).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter

import structlog

from mdfd.drivers import (
    Driver,
    DriverContext,
    InstrumentError,
    InstrumentTimeout,
    Reading,
    Timeouts,
    Value,
    WriteOutcomeUnknown,
    driver_class,
)

from ..config import MdfConfig

READERS_KEPT = 64  # distinct channel lists (acquire steps, interlock polls) a run keeps plans for

ReadingHook = Callable[[str, Reading], None]


def split(qualified: str) -> tuple[str, str]:
    instrument, _, channel = qualified.partition(".")
    return instrument, channel


def as_number(value: Value) -> float:
    """A reading compared with a bound or a target: what `float()` makes of it (a number, or a
    numeric string from a text protocol); an array channel has no single number."""
    if isinstance(value, list):
        raise TypeError(f"an array reading ({len(value)} values) is not one number")
    return float(value)


@dataclass(frozen=True, slots=True)
class _Group:
    """One instrument's part of a read: its channel names, and the hooks per position."""

    instrument: str
    driver: Driver
    names: tuple[str, ...]
    pick: Callable[[dict[str, Reading]], Sequence[Reading]]
    hooked: tuple[tuple[int, str, tuple[ReadingHook, ...]], ...]


class Reader:
    """One list of channels, read again and again: grouped per instrument once, not per read.

    `read()` returns the readings in the order of `channels` (grouped by instrument, so not
    necessarily the order asked for), each already passed to the hooks for its channel.
    """

    def __init__(self, instruments: Instruments, channels: Iterable[str]) -> None:
        grouped: dict[str, list[str]] = {}
        for qualified in dict.fromkeys(channels):
            instrument, channel = split(qualified)
            grouped.setdefault(instrument, []).append(channel)
        self._instruments = instruments
        self._groups = [
            _Group(
                instrument,
                instruments.drivers[instrument],
                tuple(names),
                _picker(names),
                tuple(
                    (index, qualified, hooks)
                    for index, name in enumerate(names)
                    if (hooks := instruments.hooks_for(qualified := f"{instrument}.{name}"))
                ),
            )
            for instrument, names in grouped.items()
        ]
        self.channels = tuple(f"{g.instrument}.{name}" for g in self._groups for name in g.names)
        # Instruments are read concurrently: the read ends when the slowest may have answered.
        self.timeout = max(instruments.timeouts[g.instrument].operation for g in self._groups)
        self._unfinished: tuple[str, ...] = ()  # the instruments a cut-short read waited for

    async def read(self) -> Sequence[Reading]:
        """One read under its own timeout (a poll, a step's single read, a retry)."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._read()
        except TimeoutError:
            raise self.timed_out() from None

    async def read_within(self, deadline: asyncio.Timeout) -> Sequence[Reading]:
        """One read of a series sharing the caller's timeout context (an acquisition's scans).

        The deadline is armed for this read only and disarmed once it returns, so the time
        between reads (the schedule's sleeps) never counts. When it expires, the caller's
        `async with` raises `TimeoutError` and the caller turns it into `timed_out()`.
        """
        deadline.reschedule(asyncio.get_running_loop().time() + self.timeout)
        readings = await self._read()
        deadline.reschedule(None)
        return readings

    def timed_out(self) -> InstrumentTimeout:
        """The error of a read that ran out of time, counted as an instrument error."""
        self._instruments.errors += 1
        stuck = self._unfinished or tuple(g.instrument for g in self._groups)
        return InstrumentTimeout(
            ",".join(stuck),
            f"read took over {self.timeout:g} s",
            channel=",".join(c for c in self.channels if split(c)[0] in stuck),
        )

    async def _read(self) -> Sequence[Reading]:
        if len(self._groups) == 1:
            return await self._read_group(self._groups[0])
        return await self._read_all()

    async def _read_all(self) -> Sequence[Reading]:
        """The first failure cancels the other instruments' reads: a read left running in the
        background would pile up under the next poll and hold its driver's lock."""
        tasks = [asyncio.create_task(self._read_group(group)) for group in self._groups]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            self._unfinished = tuple(
                group.instrument
                for group, task in zip(self._groups, tasks, strict=True)
                if not task.done()
            )
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if task in done and not task.cancelled():
                error = task.exception()
                if error is not None:
                    raise error
        return [reading for task in tasks for reading in task.result()]

    async def _read_group(self, group: _Group) -> Sequence[Reading]:
        """One driver call; its readings pass the hooks as soon as they arrive, so a reading
        that breaches an interlock trips it even if another instrument's read then fails."""
        try:
            readings = group.pick(await group.driver.read(group.names))
        except InstrumentError:
            self._instruments.errors += 1
            raise
        except TimeoutError:  # the driver's own (a deadline of ours expires as a cancellation)
            self._instruments.errors += 1
            raise InstrumentTimeout(
                group.instrument, "read timed out", channel=",".join(group.names)
            ) from None
        for index, qualified, hooks in group.hooked:
            for hook in hooks:
                hook(qualified, readings[index])
        return readings


def _picker(names: list[str]) -> Callable[[dict[str, Reading]], Sequence[Reading]]:
    """The driver's readings in `names` order; `itemgetter` of one name returns no tuple."""
    if len(names) == 1:
        [name] = names
        return lambda readings: (readings[name],)
    return itemgetter(*names)


class Instruments:
    def __init__(self, config: MdfConfig, names: Iterable[str], clock: Callable[[], float]) -> None:
        context = DriverContext(clock=clock)
        self.drivers: dict[str, Driver] = {}
        self.timeouts: dict[str, Timeouts] = {}
        for name in sorted(set(names)):
            instrument = config.instruments[name]
            self.drivers[name] = driver_class(instrument.driver)(name, instrument, context)
            self.timeouts[name] = instrument.timeouts
        self.identities: dict[str, str] = {}
        self.errors = 0
        self._hooks: list[tuple[ReadingHook, Collection[str] | None]] = []
        self._readers: dict[tuple[str, ...], Reader] = {}

    def on_reading(self, hook: ReadingHook, channels: Collection[str] | None = None) -> None:
        """Call `hook` with every reading of `channels` (of every channel if None)."""
        self._hooks.append((hook, None if channels is None else frozenset(channels)))
        self._readers.clear()

    def hooks_for(self, qualified: str) -> tuple[ReadingHook, ...]:
        return tuple(h for h, channels in self._hooks if channels is None or qualified in channels)

    def reader(self, channels: Iterable[str]) -> Reader:
        """The read plan of these channels, kept for the next step that reads the same list."""
        key = tuple(channels)
        reader = self._readers.get(key)
        if reader is None:
            if len(self._readers) >= READERS_KEPT:
                del self._readers[next(iter(self._readers))]
            reader = self._readers[key] = Reader(self, key)
        return reader

    async def connect(self) -> None:
        for name, driver in self.drivers.items():
            log = structlog.get_logger().bind(instrument=name)
            async with asyncio.timeout(self.timeouts[name].connect):
                await driver.connect()
            async with asyncio.timeout(self.timeouts[name].operation):
                self.identities[name] = await driver.identify()
            log.info("instrument connected", identity=self.identities[name])

    async def close(self) -> None:
        for name, driver in self.drivers.items():
            try:
                async with asyncio.timeout(self.timeouts[name].connect):
                    await driver.close()
            except (InstrumentError, OSError, TimeoutError) as exc:
                structlog.get_logger().warning(
                    "instrument close failed", instrument=name, error=str(exc)
                )

    async def read(self, channels: Iterable[str]) -> dict[str, Reading]:
        """Each instrument's channels in one driver call, instruments concurrently."""
        reader = self.reader(channels)
        return dict(zip(reader.channels, await reader.read(), strict=True))

    async def write(self, qualified: str, value: Value) -> None:
        instrument, channel = split(qualified)
        timeout = self.timeouts[instrument].operation
        try:
            async with asyncio.timeout(timeout):
                await self.drivers[instrument].write(channel, value)
        except TimeoutError:
            self.errors += 1
            raise WriteOutcomeUnknown(
                instrument, f"write took over {timeout:g} s", channel=channel
            ) from None
        except InstrumentError:
            self.errors += 1
            raise

    def driver(self, instrument: str) -> Driver:
        return self.drivers[instrument]
