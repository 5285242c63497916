"""The conformance checks of the columnar capability (`BlockReadable.read_block`).

They run for every target whose driver offers `read_block` and skip for the others: the rules
are those of `read` (`mdfd.drivers.base.BlockReadable`), so each check compares a block with
what `read` says of the same channels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ..base import QUALITY_CODES, Block, BlockReadable, DriverContext, Quality
from ..errors import ChannelError, InstrumentDisconnected
from .target import FIXED_TIME, ConformanceTarget, connected


def _block_reader(driver: object) -> BlockReadable:
    if not isinstance(driver, BlockReadable):
        pytest.skip("the driver does not offer read_block")
    return driver


def _numbers(target: ConformanceTarget) -> list[str]:
    return list(target.block_channels or target.channels)


@pytest.mark.asyncio
class BlockConformance:
    """Mixed into `DriverConformance`: every subclass runs these against its `target`."""

    async def test_block_has_the_values_read_gives(self, target: ConformanceTarget) -> None:
        channels = _numbers(target)
        async with connected(target) as driver:
            reader = _block_reader(driver)
            await driver.write(target.writable, target.in_limits)
            block = await reader.read_block([target.writable, *channels])
            readings = await driver.read([target.writable, *channels])
        assert block.channels == (target.writable, *channels)
        assert block.values.dtype == np.float64
        assert block.values.shape == (len(block.channels),)
        assert block.quality.dtype == np.uint8
        assert block.quality.shape == block.values.shape
        assert isinstance(target.in_limits, int | float)
        assert block.values[0] == pytest.approx(float(target.in_limits), rel=1e-6)
        for name, value, code in zip(block.channels, block.values, block.quality, strict=True):
            reading = readings[name]
            assert QUALITY_CODES[code] == reading.quality, name
            assert math.isnan(value) == (reading.quality is Quality.BAD), name
            if name in target.steady_channels:
                assert isinstance(reading.value, int | float), name
                assert value == pytest.approx(float(reading.value), rel=1e-6), name

    async def test_block_of_an_unknown_channel_is_a_channel_error(
        self, target: ConformanceTarget
    ) -> None:
        async with connected(target) as driver:
            reader = _block_reader(driver)
            sent = target.proxy.bytes_to_peer if target.proxy else 0
            with pytest.raises(ChannelError):
                await reader.read_block([*_numbers(target), "no_such_channel"])
            if target.text_channel is not None:
                with pytest.raises(ChannelError):
                    await reader.read_block([*_numbers(target), target.text_channel])
            if target.proxy is not None:
                assert target.proxy.bytes_to_peer == sent, "a refused block reached the wire"
            block = await reader.read_block(_numbers(target))
        assert block.channels == tuple(_numbers(target))

    async def test_block_after_close_is_disconnected(self, target: ConformanceTarget) -> None:
        driver = target.make_driver(DriverContext())
        reader = _block_reader(driver)
        await driver.connect()
        await driver.close()
        with pytest.raises(InstrumentDisconnected):
            await reader.read_block(_numbers(target))

    async def test_block_is_stamped_by_the_injected_clock(self, target: ConformanceTarget) -> None:
        async with connected(target, DriverContext(clock=lambda: FIXED_TIME)) as driver:
            block = await _block_reader(driver).read_block(_numbers(target))
        assert block.timestamp == FIXED_TIME

    async def test_a_bad_channel_is_nan_and_bad_in_the_block(
        self, target: ConformanceTarget
    ) -> None:
        if target.bad_channel is None:
            pytest.skip("the target names no channel its peer answers with a bad quality")
        async with connected(target) as driver:
            block: Block = await _block_reader(driver).read_block(
                [*_numbers(target), target.bad_channel]
            )
        assert math.isnan(block.values[-1])
        assert QUALITY_CODES[block.quality[-1]] is Quality.BAD
        good = block.quality[:-1] == 0
        assert np.isfinite(block.values[:-1][good]).all()
