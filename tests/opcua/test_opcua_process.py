"""The reactor as its own `mdfd sim` process: the driver rides out a kill -9 and a restart of
that process, and `mdfd probe --browse` lists its variables."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from opcua_support import eventually, instrument, start_simulator, write_config

from mdfd.drivers import DriverContext, InstrumentDisconnected, Reading
from mdfd.drivers.opcua import OpcUaDriver
from tests.support import mdfd, stop_process

pytestmark = pytest.mark.slow


async def test_reconnects_after_the_simulator_process_is_killed_and_restarted(
    tmp_path: Path,
) -> None:
    process, url = await asyncio.to_thread(start_simulator, write_config(tmp_path))
    # The restart below must come back where the driver reconnects to: that port, fixed now.
    # (Residual race: while the simulator is down another process could bind it.)
    config = write_config(tmp_path, urlsplit(url).port or 0)
    opcua = OpcUaDriver("reactor", instrument(url), DriverContext())
    streamed: list[Reading] = []

    async def consume() -> None:
        async for _channel, reading in opcua.stream(["temperature"]):
            streamed.append(reading)

    consumer: asyncio.Task[None] | None = None
    try:
        await opcua.connect()
        consumer = asyncio.create_task(consume())
        await opcua.write("temperature_sp", 100.0)
        await eventually(lambda: opcua.read(["temperature"]), lambda r: r["temperature"].value > 90)
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait, 10)
        stop_process(process)
        error = await eventually(_disconnected(opcua), lambda e: e is not None)
        # The read meets the loss itself ("... reconnecting"), or the subscription's publish
        # loop met it first and the read's lazy reconnect is what fails ("connection failed").
        assert "reconnecting" in str(error) or "connection failed" in str(error), str(error)
        process, _url = await asyncio.to_thread(start_simulator, config)
        readings = await eventually(lambda: opcua.read(["temperature_sp", "temperature"]))
        assert readings["temperature_sp"].value == 25.0  # a fresh process, a fresh world
        resumed = len(streamed)
        await eventually(lambda: asyncio.sleep(0, streamed), lambda s: len(s) >= resumed + 2)
        assert streamed[-1].value < 90.0  # delivered by the new server's subscription
    finally:
        await opcua.close()
        if consumer is not None:
            await asyncio.wait_for(consumer, 5)
        stop_process(process)


def _disconnected(opcua: OpcUaDriver):  # type: ignore[no-untyped-def]
    async def probe() -> InstrumentDisconnected | None:
        try:
            await opcua.read(["temperature_sp"])
        except InstrumentDisconnected as exc:
            return exc
        return None

    return probe


def test_probe_browse_lists_the_servers_variables(simulator_config: Path, reactor_url: str) -> None:
    result = mdfd("probe", "--config", str(simulator_config), "reactor", "--browse", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    variables = {entry["path"]: entry for entry in listing["variables"]}
    assert listing["node"] == "Objects"
    setpoint = variables["Reactor/TemperatureSetpoint"]
    assert setpoint["node"] == "nsu=urn:mdfd:sim:reactor;s=Reactor.TemperatureSetpoint"
    assert setpoint["data_type"] == "Double"
    assert setpoint["unit"] == "°C"
    assert setpoint["writable"] is True
    table = mdfd("probe", "--config", str(simulator_config), "reactor", "--browse", "s=Feed")
    assert table.returncode == 0, table.stderr
    for text in ("Flow", "nsu=urn:mdfd:sim:reactor;s=Feed.PumpRunning", "Boolean", "L/min"):
        assert text in table.stdout
    assert "Reactor" not in table.stdout.replace("variables under", "")
