"""Subscribed channels in an acquisition: the recipe's sample count holds (sample-and-hold at
the acquisition rate), and a server that samples slower than asked is not silent."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import structlog
from opcua_support import instrument, write_config

from mdfd.daemons.storage import read_channel
from mdfd.drivers import DriverContext
from mdfd.drivers.opcua import OpcUaDriver
from mdfd.simulators.reactor import ReactorSettings, ReactorSimulator
from mdfd.simulators.world import World
from tests.support import REPO, free_port, mdfd, retry_port_race

RECIPE = """
recipe: {name: subscribed-count, version: "1"}
sweep:
  parameters:
    temperature: {unit: degC, values: [100, 200]}
steps:
  - acquire: {channels: [reactor.temperature, reactor.temperature_sp], rate: 2, count: 10}
"""


@pytest.mark.slow
def test_acquire_over_a_subscribed_channel_takes_the_recipes_count(tmp_path: Path) -> None:
    """Asked for 10 samples of a subscribed channel, the run used to record one per change."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)

    def attempt() -> subprocess.CompletedProcess[str]:
        """--simulate starts the reactor on the config's port: fixed up front (free_port)."""
        config = write_config(tmp_path / "var", free_port())
        vocabulary = f"vocabulary: {REPO / 'config' / 'vocabulary.yaml'}\n"
        config.write_text(vocabulary + config.read_text())
        return mdfd("run", "--simulate", "--json", "--config", str(config), str(recipe))

    result = retry_port_race(attempt)
    assert result.returncode == 0, result.stderr[-3000:]
    data_file = result.stdout.strip().splitlines()[-1].split('"data_file": "')[1].split('"')[0]
    samples = read_channel(Path(data_file), "reactor.temperature")
    points, times = samples.point_index, samples.time
    assert [int((points == index).sum()) for index in (0, 1)] == [10, 10]
    # Held samples are stamped when taken, on the acquisition's schedule.
    assert len(set(times.tolist())) == len(times)


async def test_a_revised_sampling_interval_is_a_warning(world: World) -> None:
    simulator = ReactorSimulator(
        "reactor", ReactorSettings(port=0, min_sampling_interval=1000), world
    )
    await simulator.start()
    try:
        with structlog.testing.capture_logs() as logs:
            opcua = OpcUaDriver("reactor", instrument(simulator.url), DriverContext())
            await opcua.connect()
            await opcua.close()
    finally:
        await simulator.stop()
    revised = [e for e in logs if e["event"] == "server samples the channel slower than asked"]
    assert {e["channel"] for e in revised} == {"temperature", "selectivity"}
    assert {(e["log_level"], e["requested_ms"], e["revised_ms"]) for e in revised} == {
        ("warning", 0, 1000)
    }


async def test_an_interval_kept_by_the_server_is_not_a_warning(reactor_url: str) -> None:
    with structlog.testing.capture_logs() as logs:
        opcua = OpcUaDriver("reactor", instrument(reactor_url), DriverContext())
        await opcua.connect()
        await opcua.close()
    assert "connected" in [e["event"] for e in logs]
    assert not [e for e in logs if e["event"] == "server samples the channel slower than asked"]
