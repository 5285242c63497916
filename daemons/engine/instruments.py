"""The MDF's instruments as the engine sees them: drivers by name, channels as `inst.channel`.

Reads of many channels are grouped per instrument so each driver can batch them; instruments
are read concurrently. Every reading passes the hooks (the interlock guard) before anyone else
sees it. A list of channels read again and again (an acquisition's scans) gets a `Reader` that
has worked out the grouping and the hooks once.

Every driver operation is bounded by a timeout, but the timer is armed only once the driver's
coroutine suspends: an `asyncio.timeout` per call costs a few microseconds and a handle left in
the loop's timer heap, which was a fifth of an in-process acquisition's time, while a call that
completes without suspending cannot be stuck — and no timer could interrupt it anyway.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Generator,
    Iterable,
    Sequence,
)
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from typing import Any, TypeVar

import structlog

from mdfd.drivers import (
    Driver,
    DriverContext,
    InstrumentError,
    InstrumentTimeout,
    Reading,
    Value,
    WriteOutcomeUnknown,
    driver_class,
)

from ..config import MdfConfig

CONNECT_TIMEOUT = 30.0
OPERATION_TIMEOUT = 60.0
READERS_KEPT = 64  # distinct channel lists (acquire steps, interlock polls) a run keeps plans for

T = TypeVar("T")
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


@types.coroutine
def _resume(coro: Any, pending: Any) -> Generator[Any, Any, Any]:
    """Go on driving a coroutine that already suspended once, exactly as `await` would.

    What the task sends or throws in (a result, a cancellation) is passed through.
    """
    while True:
        try:
            sent = yield pending
        except BaseException as exc:  # a cancellation is the coroutine's to handle
            try:
                pending = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                pending = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def bounded(call: Awaitable[T], seconds: float) -> T:
    """`await call` within `seconds`, arming the timer only if the call suspends.

    The deadline counts from the first suspension: the call's synchronous start cannot be
    stuck waiting, and no timer could have interrupted it anyway.
    """
    if type(call) is not types.CoroutineType:
        async with asyncio.timeout(seconds):
            return await call
    try:
        pending = call.send(None)
    except StopIteration as done:
        result: T = done.value  # what the coroutine returned
        return result
    return await _finish(call, pending, seconds)


async def _finish(call: Coroutine[Any, Any, T], pending: Any, seconds: float) -> T:
    """The rest of a call that suspended, under its timeout."""
    try:
        async with asyncio.timeout(seconds):
            result: T = await _resume(call, pending)  # what the coroutine returned
            return result
    finally:
        call.close()


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
        # One instrument, the common case, is read without the frame of `_read_all` around it.
        self.read: Callable[[], Awaitable[Sequence[Reading]]] = (
            partial(self._read_group, self._groups[0]) if len(self._groups) == 1 else self._read_all
        )

    async def _read_all(self) -> Sequence[Reading]:
        """The first failure cancels the other instruments' reads: a read left running in the
        background would pile up under the next poll and hold its driver's lock."""
        tasks = [asyncio.create_task(self._read_group(group)) for group in self._groups]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
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
            call = group.driver.read(group.names)
            if type(call) is types.CoroutineType:
                # `bounded`, inlined: this runs once per scan of an acquisition.
                try:
                    pending = call.send(None)
                except StopIteration as done:
                    readings = group.pick(done.value)
                else:
                    readings = group.pick(await _finish(call, pending, OPERATION_TIMEOUT))
            else:
                readings = group.pick(await bounded(call, OPERATION_TIMEOUT))
        except TimeoutError:
            self._instruments.errors += 1
            raise InstrumentTimeout(
                group.instrument,
                f"read took over {OPERATION_TIMEOUT:g} s",
                channel=",".join(group.names),
            ) from None
        except InstrumentError:
            self._instruments.errors += 1
            raise
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
        for name in sorted(set(names)):
            instrument = config.instruments[name]
            self.drivers[name] = driver_class(instrument.driver)(name, instrument, context)
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
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await driver.connect()
            async with asyncio.timeout(OPERATION_TIMEOUT):
                self.identities[name] = await driver.identify()
            log.info("instrument connected", identity=self.identities[name])

    async def close(self) -> None:
        for name, driver in self.drivers.items():
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
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
        try:
            await bounded(self.drivers[instrument].write(channel, value), OPERATION_TIMEOUT)
        except TimeoutError:
            self.errors += 1
            raise WriteOutcomeUnknown(
                instrument, f"write took over {OPERATION_TIMEOUT:g} s", channel=channel
            ) from None
        except InstrumentError:
            self.errors += 1
            raise

    def driver(self, instrument: str) -> Driver:
        return self.drivers[instrument]
