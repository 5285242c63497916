"""A campaign's failure policy and time budget, as processes on the memory MDF.

Every point fails here: the furnace (first order, tau 30 s) cannot settle within 0.5 degC of a
new temperature inside the 2 s the recipe's stability wait allows.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import textwrap
from pathlib import Path

from tests.engine.conftest import write_config
from tests.support import mdfd

FAILING = """
recipe: {{name: campaign-fails, version: "1"}}
sweep:
  kind: adaptive
  parameters: {{temperature: {{unit: degC, low: 100, high: 500}}}}
  objectives: {{level: {{channel: furnace.setpoint, direction: maximize}}}}
  budget: {{max_points: 4}}
  initial_design: {{samples: 2}}
  on_failure: {policy}
steps:
  - set: {{furnace.setpoint: temperature}}
  - wait_until_stable:
      {{channel: furnace.temperature, target: temperature, tolerance: 0.5, hold: 1 s,
       timeout: 2 s, on_timeout: fail}}
  - acquire: {{channels: [furnace.setpoint], rate: 2, count: 2}}
on_error: {{then: fail_point}}
"""

TIMED = """
recipe: {name: campaign-timed, version: "1"}
sweep:
  kind: adaptive
  parameters: {time: {unit: min, low: 2, high: 3, step: 1}}
  objectives: {level: {channel: furnace.setpoint, direction: maximize}}
  budget: {max_points: 50, max_time: 7 min}
steps:
  - dwell: time
  - acquire: {channels: [furnace.setpoint], rate: 2, count: 2}
"""


def run(tmp_path: Path, text: str) -> tuple[dict, list[tuple]]:
    config = write_config(tmp_path)
    recipe = tmp_path / "campaign.yaml"
    recipe.write_text(textwrap.dedent(text))
    result = mdfd("run", str(recipe), "--config", str(config), "--json")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    with contextlib.closing(sqlite3.connect(tmp_path / "var/state/state.sqlite3")) as db:
        trials = db.execute(
            "SELECT trial, status, parameters, retry_of, point_index FROM campaign_trials"
            " ORDER BY trial"
        ).fetchall()
    return summary, trials


def test_retry_once_repeats_a_failed_point_once(tmp_path: Path) -> None:
    summary, trials = run(tmp_path, FAILING.format(policy="retry_once"))
    assert summary["status"] == "completed_with_failures"
    by_number = {t[0]: t for t in trials}
    retries = {t[3]: t for t in trials if t[3] is not None}
    assert trials[0][1] == "failed"
    assert 0 in retries, trials
    for original, retry in retries.items():
        assert by_number[original][1] == "failed"
        assert by_number[original][3] is None, "a retry is not retried again"
        assert retry[2] == by_number[original][2]  # the same point
        assert retry[0] == original + 1  # at once, before any new proposal
    # (A retry may succeed: the furnace is nearer the target the second time.)


def test_tell_failed_goes_on_with_new_points(tmp_path: Path) -> None:
    summary, trials = run(tmp_path, FAILING.format(policy="tell_failed"))
    assert (summary["status"], summary["points_done"]) == ("completed_with_failures", 4)
    measured = [t for t in trials if t[4] is not None]
    assert [t[1] for t in measured] == ["failed"] * 4
    assert len({t[2] for t in measured}) == 4
    assert all(t[3] is None for t in trials)


def test_stop_ends_the_run_at_the_first_failed_point(tmp_path: Path) -> None:
    summary, trials = run(tmp_path, FAILING.format(policy="stop"))
    assert summary["status"] == "failed"
    assert "trial 0 failed" in summary["message"]
    assert summary["points_done"] == 1
    assert [t[1] for t in trials if t[4] is not None] == ["failed"]


def test_max_time_ends_the_campaign_after_the_point_that_crosses_it(tmp_path: Path) -> None:
    summary, trials = run(tmp_path, TIMED)
    assert summary["status"] == "completed"
    minutes = [json.loads(t[2])["time"] for t in trials if t[1] == "done"]
    # Each point takes its dwell plus 0.5 s of samples: it stops once 7 min are spent.
    assert sum(minutes[:-1]) < 7 <= sum(minutes) + 0.5 / 60 * len(minutes)
    assert summary["points_done"] == len(minutes) < 50


def test_max_wall_time_ends_a_campaign_its_points_would_not(tmp_path: Path) -> None:
    text = TIMED.replace(
        "budget: {max_points: 50, max_time: 7 min}",
        "budget: {max_points: 2000, max_wall_time: 1 s}",
    )
    assert text != TIMED
    summary, trials = run(tmp_path, text)
    assert summary["status"] == "completed"
    # 2000 points of 2-3 min at time scale 3000 would take over 80 s of wall time.
    assert 1 <= summary["points_done"] < 2000
    assert sum(1 for t in trials if t[1] == "done") == summary["points_done"]
