"""The engine in-process on memory instruments: points, samples, checkpoints, safety."""

from __future__ import annotations

import asyncio
from pathlib import Path

import h5py
import numpy as np

from mdfd.daemons.core.config import load_config
from mdfd.daemons.engine.control import RunControl
from mdfd.daemons.engine.events import Event
from mdfd.daemons.engine.runner import RunExecutor
from mdfd.daemons.launch.oneshot import create_run, state_db
from mdfd.daemons.storage import read_channel, read_summary
from mdfd.daemons.store import PointStatus, RunStatus
from mdfd.recipes.loader import load_recipe

from .conftest import write_config, write_recipe


async def execute(
    config_path: Path, recipe_path: Path, control: RunControl | None = None, during=None
):
    config = load_config(config_path)
    recipe = load_recipe(recipe_path)
    async with state_db(config) as state:
        run = await create_run(state, config, recipe)
        executor = RunExecutor(config, state, control=control)
        task = asyncio.create_task(executor.execute(run))
        if during is not None:
            await during(executor)
        outcome = await asyncio.wait_for(task, 60)
        points = await state.points(run.id)
        final = await state.run(run.id)
    return outcome, points, final, executor


async def test_every_point_completes_with_exact_sample_counts(tmp_path: Path) -> None:
    outcome, points, run, _ = await execute(write_config(tmp_path), write_recipe(tmp_path))
    assert outcome.status is RunStatus.COMPLETED
    assert [p.point_index for p in points] == [0, 1, 2, 3]
    assert all(p.status is PointStatus.COMPLETED for p in points)
    assert [p.parameters for p in points] == [
        {"temperature": 200.0, "time": 1.0},
        {"temperature": 200.0, "time": 2.0},
        {"temperature": 300.0, "time": 2.0},
        {"temperature": 300.0, "time": 1.0},
    ]
    assert run is not None
    assert run.status is RunStatus.COMPLETED
    summary = read_summary(Path(run.data_file)).columns
    assert list(summary["point_index"]) == [0, 1, 2, 3]
    np.testing.assert_allclose(summary["temperature"], [200, 200, 300, 300])
    assert list(summary["furnace.temperature_n"]) == [10, 10, 10, 10]
    means = summary["furnace.temperature_mean"]
    np.testing.assert_allclose(means, [200, 200, 300, 300], atol=1.0)
    np.testing.assert_allclose(summary["meter.resistivity_mean"], 1.8)
    for point in points:
        assert point.summary.fields()["meter.resistivity"]["n"] == 10


async def test_drift_free_acquisition_gives_rate_times_duration(tmp_path: Path) -> None:
    recipe = tmp_path / "acquire.yaml"
    recipe.write_text(
        "recipe: {name: acq, version: '1'}\n"
        "sweep: {parameters: {x: {values: [1]}}}\n"
        "steps:\n  - acquire: {channels: [furnace.temperature], rate: 10, duration: 60 s}\n"
    )
    outcome, points, run, _executor = await execute(write_config(tmp_path, scale=100), recipe)
    assert outcome.status is RunStatus.COMPLETED
    assert points[0].summary.fields()["furnace.temperature"]["n"] == 600
    times = read_channel(Path(run.data_file), "furnace.temperature").time
    assert len(times) == 600
    # Stamped in order on the process clock; how late the last one is depends on the machine's
    # load (a late sample is taken, never dropped or bunched into drift), so only an upper bound.
    assert (np.diff(times) >= 0).all()
    assert times[-1] - times[0] < 120


async def test_interlock_breach_fails_run_and_applies_safe_state(tmp_path: Path) -> None:
    config = write_config(tmp_path, trip=250.0)
    outcome, points, _run, executor = await execute(config, write_recipe(tmp_path))
    assert outcome.status is RunStatus.FAILED
    assert "furnace.temperature" in outcome.message
    assert "above 250" in outcome.message
    assert len(points) == 2  # both 200 degC points completed before the 300 degC ramp tripped
    driver = executor.instruments.driver("furnace")
    assert driver._values["setpoint"] == 25


async def test_stability_timeout_skips_or_fails_as_the_recipe_says(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    skip = write_recipe(tmp_path, timeout="5 min", hold="1 h", on_timeout="skip", name="skip.yaml")
    outcome, points, _, _ = await execute(config, skip)
    assert outcome.status is RunStatus.COMPLETED
    assert {p.status for p in points} == {PointStatus.SKIPPED}
    assert len(points) == 4

    fail = write_recipe(
        tmp_path, timeout="5 min", hold="1 h", on_timeout="fail", then="stop_run", name="fail.yaml"
    )
    outcome, points, _, _ = await execute(config, fail)
    assert outcome.status is RunStatus.FAILED
    assert "did not settle" in outcome.message
    assert points == []


async def test_interrupt_then_resume_measures_each_point_once(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, scale=300)
    recipe_path = write_recipe(tmp_path)
    control = RunControl()

    async def interrupt_after_first_point(executor: RunExecutor) -> None:
        with executor.events.watch() as queue:
            while True:
                event = await asyncio.wait_for(queue.get(), 30)
                if event.event == "point_end":
                    control.interrupt("test interrupt")
                    return

    outcome, points, run, _ = await execute(
        config_path, recipe_path, control, interrupt_after_first_point
    )
    assert outcome.status is RunStatus.INTERRUPTED
    done_before = len(points)
    assert 1 <= done_before < 4
    config = load_config(config_path)
    async with state_db(config) as state:
        row = await state.run(run.id)
        outcome = await RunExecutor(config, state).execute(row)
        points = await state.points(run.id)
    assert outcome.status is RunStatus.COMPLETED
    assert [p.point_index for p in points] == [0, 1, 2, 3]
    with h5py.File(run.data_file, "r") as handle:
        assert list(handle["entry/summary/point_index"][()]) == [0, 1, 2, 3]
    point_of_sample = read_channel(Path(run.data_file), "meter.resistivity").point_index
    assert [int((point_of_sample == i).sum()) for i in range(4)] == [10, 10, 10, 10]


async def test_pause_stops_the_run_and_resume_goes_on(tmp_path: Path) -> None:
    """While paused nothing is measured or written; after resume every point completes."""
    control = RunControl()
    during_pause: list[Event] = []

    async def pause_then_resume(executor: RunExecutor) -> None:
        with executor.events.watch() as queue:
            while (await asyncio.wait_for(queue.get(), 30)).event != "point_start":
                pass
            control.pause()
            await asyncio.wait_for(control.parked.wait(), 30)
            while not queue.empty():  # what the step in progress published before parking
                queue.get_nowait()
            # 1 s of wall time is 300 s of process time here: several steps' worth.
            await asyncio.sleep(1.0)
            while not queue.empty():
                during_pause.append(queue.get_nowait())
            assert control.parked.is_set()
        control.resume()

    outcome, points, _, _ = await execute(
        write_config(tmp_path, scale=300), write_recipe(tmp_path), control, pause_then_resume
    )
    assert during_pause == []
    assert outcome.status is RunStatus.COMPLETED
    assert [p.status for p in points] == [PointStatus.COMPLETED] * 4
    assert not control.parked.is_set()


async def test_abort_stops_the_run_with_the_operators_reason(tmp_path: Path) -> None:
    control = RunControl()

    async def abort_at_second_point(executor: RunExecutor) -> None:
        with executor.events.watch() as queue:
            starts = 0
            while starts < 2:
                if (await asyncio.wait_for(queue.get(), 30)).event == "point_start":
                    starts += 1
        control.abort("operator said stop")

    outcome, points, run, _ = await execute(
        write_config(tmp_path, scale=300), write_recipe(tmp_path), control, abort_at_second_point
    )
    assert outcome.status is RunStatus.ABORTED
    assert run.message == "operator said stop"
    done = [p.point_index for p in points if p.status is PointStatus.COMPLETED]
    assert done == [0]
