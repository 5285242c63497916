"""The engine's buffered acquisition over the wire (decision 0089): an acquire step of the VISA
meter's buffered channel is taken by the meter's reading memory and fetched in blocks, and
every scan lands in the run file at its place on the instrument's schedule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from visa_support import BUFFER, CHANNELS, SERIAL_LINE, resource_of

from mdfd.daemons.core.config import load_config
from mdfd.daemons.engine.runner import RunExecutor
from mdfd.daemons.launch.oneshot import create_run, state_db
from mdfd.daemons.storage import read_channel
from mdfd.daemons.store import RunStatus
from mdfd.recipes.loader import load_recipe
from mdfd.simulators.meter import MeterSimulator
from tests.support import mdf_config, memory_instruments

RECIPE = """
recipe: {name: buffered, version: "1"}
sweep: {parameters: {x: {linspace: {start: 0, stop: 1, num: 2}}}}
steps:
  - acquire: {channels: [meter.resistivity], rate: 50, count: 3000}
"""


async def test_a_run_acquires_the_meters_reading_memory_scan_for_scan(
    tmp_path: Path, meter: MeterSimulator, transport: str
) -> None:
    instruments = memory_instruments()
    instruments["meter"] = {
        "driver": "visa",
        "resource": resource_of(meter, transport),
        "timeout": 2.0,
        "init": ["*RST", "*CLS"],
        # a serial line carries ~11 KB/s: a fetch of 3,000 readings would outlast the timeout
        "buffer": BUFFER if transport == "tcp" else {**BUFFER, "max_fetch": 500},
        "channels": {"resistivity": CHANNELS["resistivity"]},
        **({"serial": SERIAL_LINE} if transport == "serial" else {}),
    }
    # the meter's world runs 600 times fast (conftest): the MDF's clock the same
    config = load_config(
        mdf_config(tmp_path, instruments=instruments, simulation={"time_scale": 600})
    )
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(RECIPE)
    config.model.storage.data_dir.mkdir(parents=True, exist_ok=True)
    async with state_db(config) as state:
        run = await create_run(state, config, load_recipe(recipe_path))
        executor = RunExecutor(config, state)
        outcome = await executor.execute(run)
    assert outcome.status is RunStatus.COMPLETED, outcome.message
    assert executor.acquisition is not None
    assert executor.acquisition.samples_written == 6000
    assert executor.run_file is not None
    data = read_channel(executor.run_file.path, "meter.resistivity")
    assert data.point_index.tolist() == [0] * 3000 + [1] * 3000
    for point in (0, 1):
        times = data.time[data.point_index == point]
        assert np.allclose(np.diff(times), 1 / 50, atol=1e-6)  # the meter's own schedule
    truth = meter.meter.world.specimen.resistivity_uohm_cm()
    assert np.all(np.abs(data.value / truth - 1) < 0.05)
