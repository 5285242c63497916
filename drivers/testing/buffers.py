"""The conformance checks of acquisition on the instrument's clock (`Buffered`).

They run for every target whose driver is `Buffered` and that names `buffer_channels`, and
skip for the others. The rules are `mdfd.drivers.base.Buffered`'s: a started acquisition hands
over exactly its count, oldest first, each scan once, no scans (not an error) when none is
due, at most `most` a fetch; stopping is harmless at any time.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from ..base import BAD_CODE, Buffered, DriverContext
from ..errors import ChannelError, InstrumentDisconnected
from .target import ConformanceTarget, connected

COUNT = 20


def _buffered(driver: object, target: ConformanceTarget) -> Buffered:
    if not isinstance(driver, Buffered) or not target.buffer_channels:
        pytest.skip("the driver is not Buffered or the target names no buffer_channels")
    assert driver.buffers(target.buffer_channels, target.buffer_rate, COUNT), (
        "buffers() refuses the target's buffer_channels at its buffer_rate"
    )
    return driver


@pytest.mark.asyncio
class BufferConformance:
    """Mixed into `DriverConformance`: every subclass runs these against its `target`."""

    async def test_a_buffered_acquisition_hands_over_its_count_once_in_order(
        self, target: ConformanceTarget
    ) -> None:
        channels, rate = list(target.buffer_channels), target.buffer_rate
        async with connected(target) as driver:
            buffered = _buffered(driver, target)
            await buffered.start_buffer(channels, rate, COUNT)
            fetched, times = 0, []
            deadline = time.monotonic() + COUNT / rate + target.failure_bound
            while fetched < COUNT and time.monotonic() < deadline:
                scans = await buffered.fetch_buffer(7)
                assert len(scans) <= 7, "a fetch handed over more than `most`"
                assert scans.channels == tuple(channels)
                assert scans.values.dtype == np.float64
                assert scans.values.shape == (len(scans), len(channels))
                assert scans.quality.dtype == np.uint8
                assert scans.quality.shape == scans.values.shape
                assert scans.times.shape == (len(scans),)
                assert (np.isnan(scans.values) == (scans.quality == BAD_CODE)).all()
                fetched += len(scans)
                times.extend(scans.times.tolist())
                if not len(scans):
                    await asyncio.sleep(min(0.05, 1 / rate))
            assert fetched == COUNT
            assert np.allclose(np.diff(times), 1 / rate, rtol=1e-6, atol=1e-6)
            assert len(await buffered.fetch_buffer(COUNT)) == 0  # nothing handed over twice
            await buffered.stop_buffer()

    async def test_stopping_is_harmless_at_any_time(self, target: ConformanceTarget) -> None:
        channels, rate = list(target.buffer_channels), target.buffer_rate
        async with connected(target) as driver:
            buffered = _buffered(driver, target)
            await buffered.stop_buffer()  # nothing started
            await buffered.start_buffer(channels, rate, COUNT)
            await buffered.stop_buffer()
            await buffered.stop_buffer()
            await buffered.start_buffer(channels, rate, 1)  # and it starts again
            await buffered.stop_buffer()

    async def test_an_unknown_channel_is_refused(self, target: ConformanceTarget) -> None:
        async with connected(target) as driver:
            buffered = _buffered(driver, target)
            assert not buffered.buffers(["no_such_channel"], target.buffer_rate, COUNT)
            with pytest.raises(ChannelError):
                await buffered.start_buffer(["no_such_channel"], target.buffer_rate, COUNT)

    async def test_fetch_after_close_is_disconnected(self, target: ConformanceTarget) -> None:
        driver = target.make_driver(DriverContext())
        buffered = _buffered(driver, target)  # before connecting: a skip must leave nothing open
        await driver.connect()
        await buffered.start_buffer(list(target.buffer_channels), target.buffer_rate, COUNT)
        await driver.close()
        with pytest.raises(InstrumentDisconnected):
            await buffered.fetch_buffer(COUNT)
