"""An operator and a campaign: `mdfctl campaign` against an `mdfd serve` process.

A person's point is checked against the campaign (422, nothing recorded) or queued, run and
told to the optimiser like any other; an early stop ends the run completed; the best point is
shown by `mdfctl campaign` and `mdfd runs`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.harness import Daemon, environment, mdfctl, submit, wait_until, write_config
from tests.support import mdfd

RECIPE = """
recipe: {name: campaign-operate, version: "1"}
sweep:
  kind: adaptive
  parameters:
    temperature: {unit: degC, low: 100, high: 500, step: 10}
    time: {unit: min, low: 1, high: 3, step: 1}
  objectives:
    level: {channel: furnace.setpoint, reduce: mean, direction: maximize}
  constraints:
    - {inputs: {temperature: 1, time: 50}, below: 500}
  budget: {max_points: 40}
  initial_design: {kind: latin_hypercube, samples: 3}
  seed: 5
steps:
  - set: {furnace.setpoint: temperature}
  - dwell: time
  - acquire: {channels: [furnace.setpoint], rate: 2, count: 3}
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    config = write_config(tmp_path, "simulation: {time_scale: 100}")
    running = Daemon(config, env=environment()).start()
    try:
        yield running
    finally:
        running.stop()


def trials(state: Path) -> list[tuple[int, str, str, dict[str, float]]]:
    uri = f"file:{state}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as connection:
        rows = connection.execute(
            "SELECT trial, status, source, parameters FROM campaign_trials ORDER BY trial"
        ).fetchall()
    return [(t, s, src, json.loads(p)) for t, s, src, p in rows]


def test_inject_a_persons_point_then_stop_early(daemon: Daemon, tmp_path: Path) -> None:
    recipe = tmp_path / "campaign.yaml"
    recipe.write_text(textwrap.dedent(RECIPE))
    where = ("--config", str(daemon.config))
    run_id = submit(daemon.config, recipe)
    daemon.wait_points(run_id, 1)
    state = tmp_path / "var/state/state.sqlite3"

    refused = {
        "is outside 100 .. 500": ["temperature=600", "time=1"],
        "not on its step": ["temperature=205", "time=1"],
        "missing parameter": ["temperature=200"],
        "unknown parameter": ["temperature=200", "time=1", "tempo=3"],
        "breaks the input constraint": ["temperature=450", "time=2"],
    }
    for words, pairs in refused.items():
        sets = [arg for pair in pairs for arg in ("--set", pair)]
        done = mdfctl(*where, "campaign", "inject", *sets)
        assert done.returncode == 2, (words, done.stdout, done.stderr)
        assert words in done.stderr, done.stderr
    assert all(source != "person" for _, _, source, _ in trials(state))

    done = mdfctl(*where, "campaign", "inject", "--set", "temperature=410", "--set", "time=1")
    assert done.returncode == 0, done.stderr
    assert "queued" in done.stdout

    def person_measured() -> bool:
        return any(s == "person" and st == "done" for _, st, s, _ in trials(state))

    wait_until(person_measured, "the person's point to be measured", daemon)
    [person] = [t for t in trials(state) if t[2] == "person"]
    assert person[3] == {"temperature": 410.0, "time": 1.0}

    stopped = mdfctl(*where, "campaign", "stop", "--reason", "good enough")
    assert stopped.returncode == 0, stopped.stderr
    final = daemon.wait_status(run_id, "completed", "failed", "aborted")
    assert final["status"] == "completed"
    assert final["points_done"] < 40

    shown = mdfctl(*where, "campaign", "--run", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    campaign = json.loads(shown.stdout)
    measured = [t for t in trials(state) if t[1] == "done"]
    assert campaign["measured"] == len(measured) == final["points_done"]
    best = max(measured, key=lambda t: t[3]["temperature"])
    assert [b["trial"] for b in campaign["best"]] == [best[0]]
    assert campaign["best"][0]["objectives"]["level"] == pytest.approx(best[3]["temperature"])
    human = mdfctl(*where, "campaign", "--run", run_id)
    assert "best point" in human.stdout

    listed = mdfd("runs", "--config", str(daemon.config), "--json")
    [run] = json.loads(listed.stdout)
    assert run["campaign"]["best"][0]["trial"] == best[0]
