import asyncio

import numpy as np
import pytest

from mdfd.drivers import (
    ChannelError,
    DriverContext,
    InstrumentDisconnected,
    ProtocolError,
    driver_class,
)


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


async def test_a_buffered_acquisition_hands_over_the_scans_due_at_their_own_times():
    now = [1000.0]
    channels = {
        "sp": {"writable": True, "initial": 0.0},
        "pv": {"follows": "sp", "tau": 10.0},
        "note": {"initial": "text"},
    }
    plain = make(channels, clock=lambda: now[0])
    assert not plain.buffers(["pv"], 10.0, 5)  # only when configured to
    cls = driver_class("memory")
    config = cls.config_model.model_validate(
        {"driver": "memory", "buffer": True, "channels": channels}
    )
    driver = cls("mem", config, DriverContext(clock=lambda: now[0]))
    assert driver.buffers(["pv", "sp"], 10.0, 5)
    assert not driver.buffers(["note"], 10.0, 5)
    assert not driver.buffers(["pv"], 10.0, 0)
    await driver.connect()
    await driver.write("sp", 100.0)
    with pytest.raises(ChannelError, match="not a number channel"):
        await driver.start_buffer(["note"], 10.0, 5)
    await driver.start_buffer(["pv", "sp"], 10.0, 25)
    first = await driver.fetch_buffer(100)
    assert first.times.tolist() == [1000.0]  # the first scan at once
    now[0] += 1.0
    assert len(await driver.fetch_buffer(3)) == 3  # `most` bounds a fetch
    rest = await driver.fetch_buffer(100)
    assert rest.times.tolist() == pytest.approx(
        [1000.4, 1000.5, 1000.6, 1000.7, 1000.8, 1000.9, 1001.0]
    )
    expected = 100.0 * (1 - np.exp(-(rest.times - 1000.0) / 10.0))  # the lag at each scan's time
    assert rest.values[:, 0] == pytest.approx(expected, rel=1e-9)
    assert rest.values[:, 1].tolist() == [100.0] * 7
    assert not rest.quality.any()
    assert len(await driver.fetch_buffer(100)) == 0  # none due since
    now[0] += 100.0
    assert len(await driver.fetch_buffer(100)) == 25 - 11  # never more than the count
    await driver.stop_buffer()
    with pytest.raises(ProtocolError, match="no buffered acquisition"):
        await driver.fetch_buffer(1)
    await driver.close()
