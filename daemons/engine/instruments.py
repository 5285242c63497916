"""The MDF's instruments as the engine sees them: drivers by name, channels as `inst.channel`.

Reads of many channels are grouped per instrument so each driver can batch them; instruments
are read concurrently. Every instrument's values pass the checks (the interlock guard, on the
values as an array) before anyone else sees them. A list of channels read again and again (an
acquisition's scans) gets a `Reader` that has worked out the grouping and the checks once.

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
import math
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol, TypeVar

import numpy as np
import structlog

from mdfd.daemons.core.config import MdfConfig
from mdfd.drivers import (
    Block,
    BlockReadable,
    Buffered,
    ChannelError,
    Driver,
    DriverContext,
    InstrumentError,
    InstrumentTimeout,
    Reading,
    Scans,
    Timeouts,
    Value,
    WriteOutcomeUnknown,
    driver_class,
)

READERS_KEPT = 64  # distinct channel lists (acquire steps, interlock polls) a run keeps plans for

T = TypeVar("T")


def split(qualified: str) -> tuple[str, str]:
    instrument, _, channel = qualified.partition(".")
    return instrument, channel


def as_number(value: Value) -> float:
    """A reading compared with a bound or a target: what `float()` makes of it (a number, or a
    numeric string from a text protocol); an array channel has no single number."""
    if isinstance(value, list):
        raise TypeError(f"an array reading ({len(value)} values) is not one number")
    return float(value)


BlockCheck = Callable[[np.ndarray], None]
"""A check of one instrument's values in its read plan's channel order — one scan `(channels,)`
or many `(scans, channels)`, oldest first — made once per plan."""


class BlockChecks(Protocol):
    """Who checks every read on the arrays (the interlock guard): asked once per read plan and
    instrument for a check of those channels, so a scan costs one vectorised call."""

    def plan(self, channels: tuple[str, ...]) -> BlockCheck | None:
        """The check of these qualified channels' values; None when none of them concern it."""
        ...


@dataclass(frozen=True, slots=True)
class Part:
    """One instrument's share of a read plan: its qualified channels, at `start:stop` of a
    `Scan`'s values."""

    instrument: str
    channels: tuple[str, ...]
    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class Scan:
    """One read of a plan's channels as columns: a float64 per channel (NaN for no number),
    one timestamp per instrument (in `Reader.parts` order), and the channels that gave a value
    that is no number, with it (normally none), for the caller to say so."""

    values: np.ndarray
    times: tuple[float, ...]
    not_numbers: tuple[tuple[str, Value], ...] = ()


@dataclass(frozen=True, slots=True)
class _Group:
    """One instrument's part of a read: its channel names and the checks of its values."""

    part: Part
    driver: Driver
    names: tuple[str, ...]
    pick: Callable[[dict[str, Reading]], Sequence[Reading]]
    checks: tuple[BlockCheck, ...]
    read_block: Callable[[Sequence[str]], Awaitable[Block]] | None
    """The driver's columnar read when it offers one (`BlockReadable`)."""
    buffered: Buffered | None
    """The driver when it can acquire on the instrument's own clock (`Buffered`)."""


class Reader:
    """One list of channels, read again and again: grouped per instrument once, not per read.

    `read()` returns the readings in the order of `channels` (grouped by instrument, so not
    necessarily the order asked for); `scan()` and `scan_within()` the same read as a `Scan`.
    Either way each instrument's values pass the checks as soon as they arrive.
    """

    def __init__(self, instruments: Instruments, channels: Iterable[str]) -> None:
        grouped: dict[str, list[str]] = {}
        for asked in dict.fromkeys(channels):
            instrument, channel = split(asked)
            grouped.setdefault(instrument, []).append(channel)
        self._instruments = instruments
        self._groups: list[_Group] = []
        start = 0
        for instrument, names in grouped.items():
            qualified = tuple(f"{instrument}.{name}" for name in names)
            part = Part(instrument, qualified, start, start + len(names))
            start = part.stop
            driver = instruments.drivers[instrument]
            self._groups.append(
                _Group(
                    part,
                    driver,
                    tuple(names),
                    _picker(names),
                    instruments.checks_for(qualified),
                    driver.read_block if isinstance(driver, BlockReadable) else None,
                    driver if isinstance(driver, Buffered) else None,
                )
            )
        self.parts = tuple(group.part for group in self._groups)
        self.channels = tuple(c for part in self.parts for c in part.channels)
        # Instruments are read concurrently: the read ends when the slowest may have answered.
        self.timeout = max(instruments.timeouts[g.part.instrument].operation for g in self._groups)
        self._unfinished: tuple[str, ...] = ()  # the instruments a cut-short read waited for
        self._by_reading: set[str] = set()  # instruments whose read_block refused a channel

    async def read(self) -> Sequence[Reading]:
        """One read under its own timeout (a poll, a step's single read)."""
        groups = await self._bounded(self._read_readings)
        return [reading for readings in groups for reading in readings]

    async def scan(self) -> Scan:
        """One read as columns under its own timeout (an acquisition's retried scan)."""
        return _joined(await self._bounded(self._read_columns))

    async def scan_within(self, deadline: asyncio.Timeout) -> Scan:
        """One read of a series sharing the caller's timeout context (an acquisition's scans).

        The deadline is armed for this read only and disarmed once it returns, so the time
        between reads (the schedule's sleeps) never counts. When it expires, the caller's
        `async with` raises `TimeoutError` and the caller turns it into `timed_out()`.
        """
        deadline.reschedule(asyncio.get_running_loop().time() + self.timeout)
        columns = await self._each(self._read_columns)
        deadline.reschedule(None)
        return _joined(columns)

    def buffers(self, rate: float, count: int) -> bool:
        """Whether `count` scans of these channels at `rate` can be taken on their instrument's
        own clock: they are one instrument's, and its driver is `Buffered` and says it can."""
        if len(self._groups) != 1:
            return False
        group = self._groups[0]
        return group.buffered is not None and group.buffered.buffers(group.names, rate, count)

    async def start_buffer(self, rate: float, count: int) -> None:
        """Start the instrument's buffered acquisition (`buffers(rate, count)` said it can)."""
        group, driver = self._buffering()
        await self._once(group, driver.start_buffer(group.names, rate, count))

    async def fetch_buffer(self, most: int) -> Scans:
        """The scans taken since the last fetch (at most `most`), checked as they arrive."""
        group, driver = self._buffering()
        scans = await self._once(group, driver.fetch_buffer(most))
        if len(scans):
            for check in group.checks:
                check(scans.values)
        return scans

    async def stop_buffer(self) -> None:
        group, driver = self._buffering()
        await self._once(group, driver.stop_buffer())

    def _buffering(self) -> tuple[_Group, Buffered]:
        group = self._groups[0]
        if group.buffered is None:
            raise TypeError(f"{group.part.instrument} does not acquire on its own clock")
        return group, group.buffered

    async def _once(self, group: _Group, call: Awaitable[T]) -> T:
        """One driver call under the read timeout, its failure counted and typed."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._counted(group, call)
        except TimeoutError:
            raise self.timed_out() from None

    def timed_out(self) -> InstrumentTimeout:
        """The error of a read that ran out of time, counted as an instrument error."""
        self._instruments.errors += 1
        stuck = self._unfinished or tuple(g.part.instrument for g in self._groups)
        return InstrumentTimeout(
            ",".join(stuck),
            f"read took over {self.timeout:g} s",
            channel=",".join(c for c in self.channels if split(c)[0] in stuck),
        )

    async def _bounded(self, read: Callable[[_Group], Coroutine[Any, Any, T]]) -> list[T]:
        """Every instrument's `read` under one plain `asyncio.timeout` of its own."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._each(read)
        except TimeoutError:
            raise self.timed_out() from None

    async def _each(self, read: Callable[[_Group], Coroutine[Any, Any, T]]) -> list[T]:
        """`read` of every instrument, concurrently when there are several. The first failure
        cancels the other instruments' reads: a read left running in the background would pile
        up under the next poll and hold its driver's lock."""
        if len(self._groups) == 1:
            return [await read(self._groups[0])]
        tasks = [asyncio.create_task(read(group)) for group in self._groups]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            self._unfinished = tuple(
                group.part.instrument
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
        return [task.result() for task in tasks]

    async def _driver_read(self, group: _Group) -> Sequence[Reading]:
        return group.pick(await self._counted(group, group.driver.read(group.names)))

    async def _counted(self, group: _Group, call: Awaitable[T], refusable: bool = False) -> T:
        """One driver call; a failure is counted and typed (a `ChannelError` is not counted
        when the caller has another way, `refusable`)."""
        try:
            return await call
        except ChannelError:
            if not refusable:
                self._instruments.errors += 1
            raise
        except InstrumentError:
            self._instruments.errors += 1
            raise
        except TimeoutError:  # the driver's own (a deadline of ours expires as a cancellation)
            self._instruments.errors += 1
            raise InstrumentTimeout(
                group.part.instrument, "read timed out", channel=",".join(group.names)
            ) from None

    def _read_by_reading(self, group: _Group, refusal: ChannelError) -> None:
        """`read_block` refused a channel before the wire: one the config could not type and
        the server says holds no number (text), or one that does not exist. From now on this
        plan reads the instrument with `read`, which stores a non-number as an invalid sample
        (said by the acquisition) and raises the same error for an unknown channel."""
        self._by_reading.add(group.part.instrument)
        structlog.get_logger().warning(
            "columnar read refused; reading this instrument value by value",
            instrument=group.part.instrument,
            error=str(refusal),
        )

    async def _read_readings(self, group: _Group) -> Sequence[Reading]:
        """Readings, checked as soon as they arrive, so a reading that breaches an
        interlock trips it even if another instrument's read then fails."""
        readings = await self._driver_read(group)
        if group.checks:
            values, _ = _numbers(group.part.channels, readings)
            for check in group.checks:
                check(values)
        return readings

    async def _read_columns(self, group: _Group) -> _Columns:
        """One instrument's values as an array, checked as they arrive: its
        `read_block` when it has one, else its readings made into the same array."""
        if group.read_block is not None and group.part.instrument not in self._by_reading:
            try:
                block = await self._counted(group, group.read_block(group.names), True)
            except ChannelError as exc:
                self._read_by_reading(group, exc)
            else:
                for check in group.checks:
                    check(block.values)
                return block.values, block.timestamp, ()
        readings = await self._driver_read(group)
        values, odd = _numbers(group.part.channels, readings)
        for check in group.checks:
            check(values)
        return values, readings[0].timestamp, odd


_Columns = tuple[np.ndarray, float, tuple[tuple[str, Value], ...]]


def _numbers(
    channels: tuple[str, ...], readings: Sequence[Reading]
) -> tuple[np.ndarray, tuple[tuple[str, Value], ...]]:
    """Readings as float64 (booleans 0/1, integers as floats), NaN for what is no number, and
    those channels with their values."""
    values = [reading.value for reading in readings]
    try:  # the usual case, done by numpy: numbers only (text would give "U", lists 2-D)
        array = np.array(values)
    except ValueError:  # lists of several lengths
        array = np.array(())
    if array.ndim == 1 and array.dtype.kind in "fiub" and len(array) == len(values):
        return array.astype(np.float64, copy=False), ()
    odd = tuple(
        (channel, value)
        for channel, value in zip(channels, values, strict=True)
        if value.__class__ is not float and not isinstance(value, int | float)
    )
    numbers = [value if isinstance(value, int | float) else math.nan for value in values]
    return np.array(numbers, dtype=np.float64), odd


def _joined(columns: list[_Columns]) -> Scan:
    if len(columns) == 1:
        [(values, t, odd)] = columns
        return Scan(values, (t,), odd)
    return Scan(
        np.concatenate([values for values, _, _ in columns]),
        tuple(t for _, t, _ in columns),
        tuple(item for _, _, odd in columns for item in odd),
    )


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
        self._checks: list[BlockChecks] = []
        self._readers: dict[tuple[str, ...], Reader] = {}

    def on_block(self, checks: BlockChecks) -> None:
        """Check every read's values with `checks.plan(...)`, made once per plan and instrument."""
        self._checks.append(checks)
        self._readers.clear()

    def checks_for(self, channels: tuple[str, ...]) -> tuple[BlockCheck, ...]:
        return tuple(c for checks in self._checks if (c := checks.plan(channels)) is not None)

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
