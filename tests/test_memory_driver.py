import asyncio

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
