"""A campaign as a process: input constraints keep proposals off the hardware, outcome
constraints make points infeasible, a stop condition ends it early, and the file and the
records say how each point was chosen."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.support import mdf_config, mdfd, memory_instruments

RECIPE = """
recipe: {name: campaign-run, version: "1"}
sweep:
  kind: adaptive
  parameters:
    temperature: {unit: degC, low: 100, high: 500}
    time: {unit: min, low: 1, high: 3, step: 1}
  objectives:
    level: {channel: furnace.setpoint, reduce: mean, direction: maximize}
  constraints:
    - {inputs: {temperature: 1, time: 50}, below: 500}
    - {channel: furnace.setpoint, reduce: max, below: 390}
  budget: {max_points: 20, stop_when: {objective: level, above: 370}}
  initial_design: {kind: random, samples: 4}
  seed: 3
steps:
  - set: {furnace.setpoint: temperature}
  - dwell: time
  - acquire: {channels: [furnace.setpoint], rate: 2, count: 3}
"""


def test_constraints_stop_condition_file_and_records(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    config = mdf_config(
        tmp_path,
        instruments=memory_instruments(),
        upstream={"publishers": [{"type": "file", "name": "spool", "directory": str(spool)}]},
    )
    recipe = tmp_path / "campaign.yaml"
    recipe.write_text(textwrap.dedent(RECIPE))
    result = mdfd("run", str(recipe), "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed"

    with contextlib.closing(sqlite3.connect(tmp_path / "var/state/state.sqlite3")) as db:
        rows = db.execute(
            "SELECT trial, status, parameters, point_index, objectives, violations"
            " FROM campaign_trials ORDER BY trial"
        ).fetchall()
    trials = [(t, s, json.loads(p), i, json.loads(o), json.loads(v)) for t, s, p, i, o, v in rows]
    run = [t for t in trials if t[1] == "done"]
    rejected = [t for t in trials if t[1] == "rejected"]
    # The campaign ended with a proposal that never ran: it says so.
    assert {t[1] for t in trials} <= {"done", "rejected", "dropped"}
    assert [t[3] for t in trials if t[1] == "dropped"] == [None] * sum(
        1 for t in trials if t[1] == "dropped"
    )
    # Input constraint: every point that ran keeps it; every rejected one broke it, never ran.
    for _, _, point, index, _, violations in run:
        assert point["temperature"] + 50 * point["time"] <= 500
        assert violations["inputs[0]"] == 0
        assert index is not None
    for _, _, point, index, _, violations in rejected:
        assert point["temperature"] + 50 * point["time"] > 500
        assert violations["inputs[0]"] > 0
        assert index is None
    # Outcome constraint: told as a violation exactly when the measured set-point passed 390.
    for _, _, point, _, objectives, violations in run:
        assert objectives == [pytest.approx(point["temperature"])]
        assert (violations["constraints[1]"] > 0) == (point["temperature"] > 390)
    # The stop condition ended it before the budget, at the first feasible point >= 370.
    feasible = [t for t in run if t[5]["constraints[1]"] == 0]
    assert len(run) < 20
    assert feasible[-1][4][0] >= 370
    assert all(t[4][0] < 370 for t in feasible[:-1])
    assert rejected, "no proposal broke the input constraint: the test proves nothing"
    assert len(feasible) < len(run), "no point broke the outcome constraint"

    with h5py.File(summary["data_file"], "r") as handle:
        ran = (
            handle["entry/summary/temperature"][()]
            if "entry/summary/temperature" in handle
            else None
        )
        group = handle["entry/campaign"]
        assert list(group["trial"][()]) == [t[0] for t in trials]
        assert [s.decode() for s in group["status"][()]] == [t[1] for t in trials]
        assert list(group["point_index"][()]) == [-1 if t[3] is None else t[3] for t in trials]
        levels = group["objectives/level"][()]
        for trial, level in zip(trials, levels, strict=True):
            assert (trial[4][0] if trial[1] == "done" else np.nan) == level or (
                np.isnan(level) and trial[1] != "done"
            )
        assert list(group["front"][()]) == [feasible[-1][0]]
        assert group["best_so_far"][-1] == feasible[-1][4][0]
    if ran is not None:
        assert sorted(ran) == sorted(t[2]["temperature"] for t in run)

    [records_file] = spool.glob("*.jsonl")
    records = [json.loads(line) for line in records_file.read_text().splitlines()]
    chosen = [r["provenance"]["point"]["chosen_by"] for r in records]
    assert [c["trial"] for c in chosen] == [t[0] for t in run]
    assert [c["source"] for c in chosen][:2] == ["initial", "initial"]
    assert {c["method"] for c in chosen if c["source"] == "initial"} == {"random"}
    assert {c["optimiser"] for c in chosen} == {"optuna-tpe"}
    assert all(c["seed"] == 3 for c in chosen)
    assert [c["objectives"]["level"] for c in chosen] == [t[4][0] for t in run]
    assert [c["feasible"] for c in chosen] == [t[5]["constraints[1]"] == 0 for t in run]

    # `mdfd plot` of an adaptive run: the campaign at PATH, the channels beside it.
    out = tmp_path / "plots" / "campaign.png"
    drawn = mdfd("plot", "--config", str(config), summary["run_id"], "--out", str(out))
    assert drawn.returncode == 0, drawn.stderr
    assert f"{out}: 1 panels, {len(trials)} trials of the campaign" in drawn.stdout
    channels = tmp_path / "plots" / "campaign-channels.png"
    assert f"{channels}: 1 panels, {len(run)} points" in drawn.stdout
    for png in (out, channels):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
