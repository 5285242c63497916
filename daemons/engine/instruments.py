"""The MDF's instruments as the engine sees them: drivers by name, channels as `inst.channel`.

Reads of many channels are grouped per instrument so each driver can batch them; instruments
are read concurrently. Every reading passes the interlock guard before anyone else sees it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable

import structlog

from mdfd.drivers import (
    Driver,
    DriverContext,
    InstrumentError,
    InstrumentTimeout,
    Reading,
    Subscribable,
    Value,
    WriteOutcomeUnknown,
    driver_class,
)

from ..config import MdfConfig

CONNECT_TIMEOUT = 30.0
OPERATION_TIMEOUT = 60.0

ReadingHook = Callable[[str, Reading], None]


def split(qualified: str) -> tuple[str, str]:
    instrument, _, channel = qualified.partition(".")
    return instrument, channel


class Instruments:
    def __init__(self, config: MdfConfig, names: Iterable[str], clock: Callable[[], float]) -> None:
        context = DriverContext(clock=clock)
        self.drivers: dict[str, Driver] = {}
        for name in sorted(set(names)):
            instrument = config.instruments[name]
            self.drivers[name] = driver_class(instrument.driver)(name, instrument, context)
        self.identities: dict[str, str] = {}
        self.errors = 0
        self._hooks: list[ReadingHook] = []
        # isinstance against a runtime Protocol inspects every member: asked once per driver,
        # not once per acquired channel per point.
        self._pushes = {n: isinstance(d, Subscribable) for n, d in self.drivers.items()}

    def on_reading(self, hook: ReadingHook) -> None:
        self._hooks.append(hook)

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
        """Each instrument's channels in one driver call, instruments concurrently.

        The first failure cancels the other instruments' reads: a read left running in the
        background would pile up under the next poll and hold its driver's lock.
        """
        grouped: dict[str, list[str]] = defaultdict(list)
        for qualified in channels:
            instrument, channel = split(qualified)
            grouped[instrument].append(channel)
        if len(grouped) == 1:
            [(instrument, names)] = grouped.items()
            return await self._read_one(instrument, names)
        tasks = [asyncio.create_task(self._read_one(i, names)) for i, names in grouped.items()]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        out: dict[str, Reading] = {}
        for task in tasks:
            if task in done and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        for task in tasks:
            out.update(task.result())
        return out

    async def _read_one(self, instrument: str, channels: list[str]) -> dict[str, Reading]:
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT):
                readings = await self.drivers[instrument].read(channels)
        except TimeoutError:
            self.errors += 1
            raise InstrumentTimeout(
                instrument, f"read took over {OPERATION_TIMEOUT:g} s", channel=",".join(channels)
            ) from None
        except InstrumentError:
            self.errors += 1
            raise
        out = {f"{instrument}.{name}": reading for name, reading in readings.items()}
        for qualified, reading in out.items():
            for hook in self._hooks:
                hook(qualified, reading)
        return out

    async def write(self, qualified: str, value: Value) -> None:
        instrument, channel = split(qualified)
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT):
                await self.drivers[instrument].write(channel, value)
        except TimeoutError:
            self.errors += 1
            raise WriteOutcomeUnknown(
                instrument, f"write took over {OPERATION_TIMEOUT:g} s", channel=channel
            ) from None
        except InstrumentError:
            self.errors += 1
            raise

    def subscribed(self, qualified: str) -> bool:
        instrument, channel = split(qualified)
        if not self._pushes[instrument]:
            return False
        driver = self.drivers[instrument]
        return channel in driver.subscribed_channels()  # type: ignore[attr-defined]

    def driver(self, instrument: str) -> Driver:
        return self.drivers[instrument]
