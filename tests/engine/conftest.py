"""An MDF of memory-driver instruments on a fast clock, for exercising the engine itself."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mdfd.daemons.store import RunStatus, StateDB
from tests.support import mdf_config, memory_instruments

RECIPE = """
recipe: {{name: engine-test, version: "1"}}
sweep:
  mode: grid
  order: serpentine
  parameters:
    temperature: {{unit: degC, values: {temperatures}}}
    time: {{unit: min, values: [1, 2]}}
steps:
  - set: {{meter.specimen: 1}}
  - ramp: {{channel: furnace.setpoint, to: temperature, rate: 50 degC/min, increment: 10}}
  - wait_until_stable:
      {{channel: furnace.temperature, target: temperature, tolerance: 1, hold: {hold},
       timeout: {timeout}, on_timeout: {on_timeout}}}
  - dwell: time
  - acquire: {{channels: [meter.resistivity, furnace.temperature], rate: {rate}, count: {count}}}
record:
  process:
    - {{code: PRC_ANNEAL_TEMP, from: temperature}}
  properties:
    - {{code: PRP_ELECTRICAL_RESISTIVITY, from: meter.resistivity}}
on_error: {{retries: 1, backoff: 1 s, then: {then}}}
"""


def write_config(
    tmp_path: Path,
    scale: float = 3000.0,
    trip: float = 1450.0,
    timeouts: dict[str, object] | None = None,
) -> Path:
    """The memory MDF (with the furnace's `running` switch) on a clock `scale` times fast,
    its interlock tripping above `trip` degC; `timeouts` for every instrument if given."""
    instruments = memory_instruments()
    instruments["furnace"]["channels"]["running"] = {"writable": True, "initial": True}
    if timeouts is not None:
        for instrument in instruments.values():
            instrument["timeouts"] = timeouts
    return mdf_config(
        tmp_path,
        simulation={"time_scale": scale},
        instruments=instruments,
        safety={
            "interlocks": [
                {"channel": "furnace.temperature", "above": trip, "message": "over-temperature"}
            ],
            "safe_state": {"furnace.setpoint": 25},
        },
    )


def write_recipe(
    tmp_path: Path,
    temperatures: str = "[200, 300]",
    rate: float = 2.0,
    count: int = 10,
    timeout: str = "1 h",
    on_timeout: str = "fail",
    then: str = "stop_run",
    name: str = "recipe.yaml",
    hold: str = "30 s",
) -> Path:
    path = tmp_path / name
    path.write_text(
        textwrap.dedent(
            RECIPE.format(
                temperatures=temperatures,
                rate=rate,
                count=count,
                timeout=timeout,
                on_timeout=on_timeout,
                then=then,
                hold=hold,
            )
        )
    )
    return path


@pytest.fixture
def memory_config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


async def create_running_run(state: StateDB, run_id: str, data_file: Path, points: int) -> None:
    """A run row in `state`, running, with placeholders for what these tests do not read (the
    recipe's texts and hash): the parent rows of the points a test checkpoints."""
    await state.create_run(
        run_id=run_id,
        recipe_name="r",
        recipe_version="1",
        recipe_sha256="0" * 64,
        recipe_text="",
        recipe_path="",
        config_text="",
        points_total=points,
        status=RunStatus.RUNNING,
        data_file=str(data_file),
    )
