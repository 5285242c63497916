import asyncio

import numpy as np
import pytest

from mdfd.drivers import ChannelError, DriverContext, InstrumentDisconnected, driver_class


def make(channels: dict, clock=None):
    cls = driver_class("memory")
    config = cls.config_model.model_validate({"driver": "memory", "channels": channels})
    return cls("mem", config, DriverContext(clock=clock) if clock else DriverContext())


async def test_follower_approaches_written_target_first_order():
    now = [1000.0]
    driver = make(
        {"sp": {"writable": True, "initial": 0.0}, "pv": {"follows": "sp", "tau": 10.0}},
        clock=lambda: now[0],
    )
    await driver.connect()
    await driver.write("sp", 100.0)
    now[0] += 10.0
    reading = (await driver.read(["pv"]))["pv"]
    assert reading.value == pytest.approx(100.0 * (1 - 1 / 2.718281828), rel=1e-6)
    now[0] += 1000.0
    assert (await driver.read(["pv"]))["pv"].value == pytest.approx(100.0)
    await driver.close()


async def test_limits_and_unknown_channels_are_refused():
    driver = make({"sp": {"writable": True, "limits": {"min": 0, "max": 10}}, "ro": {}})
    await driver.connect()
    with pytest.raises(ChannelError, match="outside limits"):
        await driver.write("sp", 11)
    with pytest.raises(ChannelError, match="not writable"):
        await driver.write("ro", 1)
    with pytest.raises(ChannelError, match="no such channel"):
        await driver.read(["nope"])
    await driver.close()
    with pytest.raises(InstrumentDisconnected):
        await driver.read(["sp"])


async def test_concurrent_reads_are_consistent():
    driver = make({"a": {"initial": 1.5, "unit": "V"}})
    await driver.connect()
    results = await asyncio.gather(*(driver.read(["a"]) for _ in range(50)))
    assert {r["a"].value for r in results} == {1.5}
    assert results[0]["a"].unit == "V"
    await driver.close()


async def test_block_follows_the_same_lag_as_read():
    now = [1000.0]
    driver = make(
        {
            "sp": {"writable": True, "initial": 0.0},
            "pv": {"follows": "sp", "tau": 10.0},
            "instant": {"follows": "sp"},
            "on": {"initial": True},
        },
        clock=lambda: now[0],
    )
    await driver.connect()
    await driver.write("sp", 100.0)
    now[0] += 10.0
    block = await driver.read_block(["pv", "instant", "sp", "on"])
    assert block.channels == ("pv", "instant", "sp", "on")
    assert block.values.tolist() == pytest.approx(
        [100.0 * (1 - 1 / 2.718281828), 100.0, 100.0, 1.0]
    )
    assert block.quality.tolist() == [0, 0, 0, 0]
    assert block.timestamp == 1000.0 + 10.0
    # The block advanced the follower: a read at the same instant sees the same value.
    assert (await driver.read(["pv"]))["pv"].value == pytest.approx(block.values[0])
    now[0] += 1000.0
    assert (await driver.read_block(["pv"])).values[0] == pytest.approx(100.0)
    await driver.close()


async def test_block_refuses_text_and_marks_non_finite_values_bad():
    driver = make({"name": {"initial": "x"}, "v": {"writable": True}})
    await driver.connect()
    with pytest.raises(ChannelError, match="not a number channel"):
        await driver.read_block(["v", "name"])
    await driver.write("v", float("inf"))
    block = await driver.read_block(["v"])
    assert np.isnan(block.values[0])
    assert block.quality[0] == 2
    await driver.close()
