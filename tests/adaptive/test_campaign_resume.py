"""An adaptive campaign survives `kill -9` at any moment and proposes what it would have.

The daemon runs as a process on the memory MDF; its objective is the furnace set-point read
back, so every measurement is exactly reproducible and any difference between the trials of
an uninterrupted campaign and of a killed-and-resumed one can only come from the campaign.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import textwrap
import time
from pathlib import Path

import h5py
import pytest

from tests.engine.conftest import write_config
from tests.support import Child, mdfd, start_mdfd, stop_process

POINTS = 8
RECIPE = """
recipe: {name: campaign-test, version: "1"}
sweep:
  kind: adaptive
  parameters:
    temperature: {unit: degC, low: 100, high: 500}
    time: {unit: min, low: 1, high: 3, step: 1}
  objectives:
    closeness: {channel: furnace.setpoint, reduce: mean, direction: maximize}
  constraints:
    - {inputs: {temperature: 1, time: 100}, below: 700}
  budget: {max_points: 8}
  batch_size: 2
  initial_design: {kind: latin_hypercube, samples: 3}
  seed: 11
steps:
  - set: {furnace.setpoint: temperature}
  - dwell: time
  - acquire: {channels: [furnace.setpoint], rate: 2, count: 3}
"""


def trials(state: Path) -> list[tuple[int, str, str, str]]:
    with contextlib.closing(sqlite3.connect(state)) as connection:
        return connection.execute(
            "SELECT trial, status, source, parameters FROM campaign_trials ORDER BY trial"
        ).fetchall()


def wait_for(state: Path, query: str, process: Child, timeout: float = 60.0) -> None:
    """Until `query` on the state database gives a true first column."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.err_text()[-3000:]
        with (
            contextlib.suppress(sqlite3.OperationalError),
            contextlib.closing(sqlite3.connect(state)) as connection,
        ):
            if connection.execute(query).fetchone()[0]:
                return
        time.sleep(0.02)
    raise TimeoutError(query)


def campaign(tmp_path: Path) -> tuple[Path, Path]:
    config = write_config(tmp_path, scale=200)
    recipe = tmp_path / "campaign.yaml"
    recipe.write_text(textwrap.dedent(RECIPE))
    return config, recipe


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, str, str, str]]:
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    config, recipe = campaign(tmp_path)
    result = mdfd("run", str(recipe), "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    recorded = trials(tmp_path / "var/state/state.sqlite3")
    assert sum(1 for t in recorded if t[1] == "done") == POINTS
    return recorded


# Where the kill lands: while a trial is only proposed, while a point runs, right after
# checkpoints, late in the campaign.
KILL_WHEN = {
    "first-running": "SELECT COUNT(*) FROM campaign_trials WHERE status = 'running'",
    "after-2-done": "SELECT COUNT(*) >= 2 FROM campaign_trials WHERE status = 'done'",
    "after-5-done": "SELECT COUNT(*) >= 5 FROM campaign_trials WHERE status = 'done'",
    "optimiser-running": "SELECT COUNT(*) FROM campaign_trials WHERE status = 'running'"
    " AND source = 'optimiser'",
}


@pytest.mark.parametrize("moment", list(KILL_WHEN))
def test_kill_9_then_resume_proposes_what_an_uninterrupted_campaign_did(
    tmp_path: Path, moment: str, uninterrupted: list[tuple[int, str, str, str]]
) -> None:
    config, recipe = campaign(tmp_path)
    state = tmp_path / "var/state/state.sqlite3"
    process = start_mdfd("run", str(recipe), "--config", str(config), "--json", logs=tmp_path)
    try:
        wait_for(state, KILL_WHEN[moment], process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        stop_process(process)
    before = trials(state)
    assert any(t[1] != "done" for t in before), "the kill landed after the campaign ended"
    [run] = json.loads(mdfd("runs", "--config", str(config), "--json").stdout)
    resumed = mdfd("resume", run["id"], "--config", str(config), "--json")
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert (final["status"], final["points_done"]) == ("completed", POINTS)
    assert trials(state) == uninterrupted
    with h5py.File(final["data_file"], "r") as handle:
        assert sorted(handle["entry/summary/point_index"][()]) == list(range(POINTS))
