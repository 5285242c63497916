"""`mdfd run` / `resume` / `runs` as processes: exit codes, signals, kill -9 and resume."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import h5py
import pytest

from mdfd.daemons.storage import read_channel
from tests.support import Child, mdfd, read_export, require_tool, start_mdfd, stop_process

from .conftest import write_config, write_recipe

TEMPERATURES = "[200, 250, 300]"
POINTS = 6


def wait_for_points(process: Child, state: Path, count: int, timeout: float = 60.0) -> None:
    """Wait until the run is running and `count` points are checkpointed (reading the DB)."""
    query = (
        "SELECT (SELECT COUNT(*) FROM runs WHERE status = 'running'), (SELECT COUNT(*) FROM points)"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.err_text()[-3000:]
        try:
            with contextlib.closing(sqlite3.connect(state)) as connection:
                running, done = connection.execute(query).fetchone()
        except sqlite3.OperationalError:
            running = done = 0
        if running and done >= count:
            return
        time.sleep(0.05)
    raise TimeoutError(f"fewer than {count} points after {timeout}s")


def test_run_completes_and_reports_json_summary(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = mdfd(
        "run", str(write_recipe(tmp_path, TEMPERATURES)), "--config", str(config), "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed"
    assert summary["points_done"] == summary["points_total"] == POINTS
    assert Path(summary["data_file"]).exists()

    listed = mdfd("runs", "--config", str(config), "--json")
    assert listed.returncode == 0
    [run] = json.loads(listed.stdout)
    assert run["id"] == summary["run_id"]
    assert (run["status"], run["points_done"]) == ("completed", POINTS)

    exported = tmp_path / "out.csv"
    result = mdfd("export", "--config", str(config), summary["run_id"], "--csv", str(exported))
    assert result.returncode == 0, result.stderr
    rows = read_export(exported)
    assert [float(r["temperature"]) for r in rows] == [200, 200, 250, 250, 300, 300]
    for row in rows:
        assert float(row["furnace.temperature_mean"]) == pytest.approx(
            float(row["temperature"]), abs=1.0
        )
        assert int(float(row["meter.resistivity_n"])) == 10


def test_bad_recipe_exits_2_before_anything_is_touched(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    recipe = write_recipe(tmp_path, "[200, 2000]")
    result = mdfd("run", str(recipe), "--config", str(config))
    assert result.returncode == 2
    assert "recipe.yaml:" in result.stderr
    assert "outside its limits" in result.stderr
    assert not (tmp_path / "var" / "state").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_interrupts_resumably_then_resume_completes(tmp_path: Path, signum: int) -> None:
    config = write_config(tmp_path, scale=200)
    recipe = write_recipe(tmp_path, TEMPERATURES)
    process = start_mdfd("run", str(recipe), "--config", str(config), "--json", logs=tmp_path)
    try:
        wait_for_points(process, tmp_path / "var/state/state.sqlite3", 1)
        process.send_signal(signum)
        _, out, err = process.finish(timeout=30)
    finally:
        stop_process(process)
    assert process.returncode == 3, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "interrupted"
    assert "safe state applied" in err
    resumed = mdfd("resume", summary["run_id"], "--config", str(config), "--json")
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert final["status"] == "completed"
    assert final["points_done"] == POINTS
    with h5py.File(final["data_file"], "r") as handle:
        assert sorted(handle["entry/summary/point_index"][()]) == list(range(POINTS))


@pytest.mark.parametrize("after_points", [0, 1, 3])
def test_kill_9_then_resume_completes_each_point_exactly_once(
    tmp_path: Path, after_points: int
) -> None:
    config = write_config(tmp_path, scale=200)
    recipe = write_recipe(tmp_path, TEMPERATURES)
    process = start_mdfd("run", str(recipe), "--config", str(config), "--json", logs=tmp_path)
    state = tmp_path / "var/state/state.sqlite3"
    try:
        wait_for_points(process, state, after_points)
        if not after_points:
            time.sleep(0.3)  # inside the first point's ramp or wait
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        stop_process(process)
    listed = json.loads(mdfd("runs", "--config", str(config), "--json").stdout)
    [run] = listed
    assert run["status"] == "running"  # what a dead process leaves behind
    resumed = mdfd("resume", run["id"], "--config", str(config), "--json")
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert final["points_done"] == POINTS
    with h5py.File(final["data_file"], "r") as handle:
        indices = list(handle["entry/summary/point_index"][()])
        assert indices == list(range(POINTS))
    samples = read_channel(Path(final["data_file"]), "meter.resistivity").point_index
    assert [int((samples == i).sum()) for i in range(POINTS)] == [10] * POINTS
    dump = subprocess.run(
        [require_tool("h5dump", "hdf5-tools"), "-H", final["data_file"]],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert dump.returncode == 0, dump.stderr
    exported = tmp_path / "all.csv"
    assert (
        mdfd("export", "--config", str(config), run["id"], "--csv", str(exported)).returncode == 0
    )
    assert len(read_export(exported)) == POINTS


def test_second_process_on_same_mdf_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, scale=50)
    recipe = write_recipe(tmp_path, TEMPERATURES)
    first = start_mdfd("run", str(recipe), "--config", str(config), logs=tmp_path)
    try:
        wait_for_points(first, tmp_path / "var/state/state.sqlite3", 0)
        time.sleep(0.5)
        second = mdfd("run", str(recipe), "--config", str(config))
        assert second.returncode == 2
        assert "holds this MDF" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
        stop_process(first)
