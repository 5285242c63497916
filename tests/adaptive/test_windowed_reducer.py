"""`reduce: {mean_of_last: …}`: an objective taken from the settled end of each point, not the
whole of its transient — checked against the samples the run file holds."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mdfd.daemons.storage import read_channel
from tests.support import mdf_config, mdfd, memory_instruments

RECIPE = """
recipe: {name: settled-campaign, version: "1"}
sweep:
  kind: adaptive
  parameters:
    temperature: {unit: degC, low: 100, high: 500, step: 50}
  objectives:
    settled: {channel: furnace.temperature, reduce: {mean_of_last: 5 s}, direction: maximize}
  budget: {max_points: 4}
  initial_design: {kind: random, samples: 4}
  seed: 7
steps:
  - set: {furnace.setpoint: temperature}
  - acquire: {channels: [furnace.temperature], rate: 2, count: 40}
"""


def test_the_objective_is_the_mean_of_the_points_last_seconds(tmp_path: Path) -> None:
    config = mdf_config(tmp_path, instruments=memory_instruments())
    recipe = tmp_path / "campaign.yaml"
    recipe.write_text(textwrap.dedent(RECIPE))
    result = mdfd("run", str(recipe), "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])

    with contextlib.closing(sqlite3.connect(tmp_path / "var/state/state.sqlite3")) as db:
        rows = db.execute(
            "SELECT point_index, objectives FROM campaign_trials WHERE status = 'done'"
        ).fetchall()
    assert len(rows) == 4
    samples = read_channel(Path(summary["data_file"]), "furnace.temperature")
    windowed_differs = False
    for point_index, objectives in rows:
        mine = samples.point_index == point_index
        times, values = samples.time[mine], samples.value[mine]
        assert len(values) == 40  # the temperature still rises toward the set-point
        settled = values[times >= times.max() - 5.0]
        assert 0 < len(settled) < len(values)
        assert json.loads(objectives) == [pytest.approx(float(np.mean(settled)))]
        windowed_differs |= not np.isclose(np.mean(settled), np.mean(values))
    assert windowed_differs  # the window is not the whole point


def test_a_window_that_is_a_parameter_or_not_positive_is_refused_at_its_line(
    tmp_path: Path,
) -> None:
    config = mdf_config(tmp_path, instruments=memory_instruments())
    for window in ("temperature", "0 s"):
        recipe = tmp_path / "bad.yaml"
        recipe.write_text(
            textwrap.dedent(RECIPE).replace("mean_of_last: 5 s", f"mean_of_last: {window}")
        )
        result = mdfd("validate", str(recipe), "--config", str(config))
        assert result.returncode == 2, result.stdout
        assert (
            "bad.yaml:8: sweep.objectives.settled.reduce.mean_of_last: a positive duration"
            in result.stderr
        ), result.stderr
        assert "a positive duration" in result.stderr
