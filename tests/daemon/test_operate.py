"""An operator at work: `mdfctl` processes against an `mdfd serve` process on memory instruments."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import pytest

from tests.support import mdfd

from .harness import (
    Daemon,
    environment,
    mdfctl,
    point_rows,
    submit,
    wait_until,
    write_config,
    write_recipe,
)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = Daemon(write_config(tmp_path), env=environment()).start()
    try:
        yield running
    finally:
        running.stop()


def test_submit_watch_show_status(daemon: Daemon, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path)
    status = mdfctl("--config", str(daemon.config), "status", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["mdf"]["id"] == "mem-mdf"
    assert {n: h["state"] for n, h in data["instruments"].items()} == {
        "furnace": "ok",
        "meter": "ok",
    }
    assert data["instruments"]["furnace"]["identity"] == "mdfd,memory,0,1.0"
    assert data["current"] is None
    assert data["queue"] == []

    watched = mdfctl("--socket", str(daemon.socket), "submit", str(recipe), "--watch")
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    assert lines[0].startswith("queued ")
    run_id = lines[0].split()[1]
    assert [line.split()[1:4] for line in lines if line.startswith("point ")] == [
        ["0", "completed", "(1/3"],
        ["1", "completed", "(2/3"],
        ["2", "completed", "(3/3"],
    ]
    assert lines[-1] == f"run {run_id} completed"

    shown = json.loads(mdfctl("--config", str(daemon.config), "show", run_id, "--json").stdout)
    assert shown["status"] == "completed"
    assert [p["index"] for p in shown["points"]] == [0, 1, 2]
    assert [p["parameters"]["temperature"] for p in shown["points"]] == [200.0, 300.0, 400.0]
    assert shown["points"][2]["summary"]["furnace.temperature"]["mean"] == pytest.approx(
        400.0, abs=1.0
    )
    assert shown["files"][0]["exists"] is True
    with h5py.File(shown["files"][0]["path"], "r") as handle:
        assert list(handle["entry/summary/point_index"][()]) == [0, 1, 2]

    human = mdfctl("--config", str(daemon.config), "show", run_id)
    assert human.returncode == 0
    assert "completed, 3/3 points" in human.stdout
    runs = json.loads(mdfctl("--config", str(daemon.config), "runs", "--json").stdout)
    assert [r["id"] for r in runs] == [run_id]
    # A finished run is watched by printing its end at once.
    again = mdfctl("--config", str(daemon.config), "watch", run_id)
    assert again.returncode == 0
    assert again.stdout.strip() == f"run {run_id} completed"
    metrics = mdfctl("--config", str(daemon.config), "metrics").stdout
    assert 'mdfd_points_total{mdf="mem-mdf",status="completed"} 3' in metrics
    assert 'mdfd_samples_written_total{mdf="mem-mdf"} 24' in metrics
    assert 'mdfd_upstream_outbox_depth{mdf="mem-mdf",publisher="spool"}' in metrics
    assert "mdfd_event_loop_lag_seconds" in metrics


def test_pause_resume_then_abort(daemon: Daemon, tmp_path: Path) -> None:
    temperatures = "[" + ", ".join(str(t) for t in range(100, 1100, 50)) + "]"
    recipe = write_recipe(tmp_path, temperatures=temperatures)
    run_id = submit(daemon.config, recipe)
    daemon.wait_points(run_id, 1)
    paused = mdfctl("--config", str(daemon.config), "pause")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.strip() == f"pause: {run_id}"
    at_pause = daemon.run(run_id)
    assert at_pause["status"] == "paused"
    assert at_pause["progress"]["state"] == "paused"
    # Pausing twice is refused; the point in flight may still end, no further one starts.
    twice = mdfctl("--config", str(daemon.config), "pause")
    assert twice.returncode == 1
    assert "already paused" in twice.stderr
    wait_until(lambda: "paused" in daemon.get("/status")["daemon"]["status"], "paused status")
    settled = daemon.run(run_id)["points_done"]
    assert settled <= at_pause["points_done"] + 1
    assert daemon.run(run_id)["status"] == "paused"

    resumed = mdfctl("--config", str(daemon.config), "resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    daemon.wait_points(run_id, settled + 1)
    aborted = mdfctl("--config", str(daemon.config), "abort", "--reason", "wrong batch")
    assert aborted.returncode == 0, aborted.stderr
    final = daemon.wait_status(run_id, "aborted")
    assert final["message"] == "wrong batch"
    assert final["points_done"] < 20
    # The abort drove the safe state: the furnace setpoint is back at 25 °C for the next run.
    assert "safe state applied" in daemon.log_text()
    nothing = mdfctl("--config", str(daemon.config), "resume")
    assert nothing.returncode == 1
    assert "no run is executing" in nothing.stderr


def test_queue_order_reorder_and_drop(daemon: Daemon, tmp_path: Path) -> None:
    long = write_recipe(tmp_path, name="first", temperatures="[100, 200, 300, 400]")
    first = submit(daemon.config, long)
    daemon.wait_status(first, "running")
    # Held paused while the queue is rearranged, so nothing drains under the test's feet.
    assert mdfctl("--config", str(daemon.config), "pause", first).returncode == 0
    second = submit(daemon.config, write_recipe(tmp_path, name="second", temperatures="[100]"))
    third = submit(daemon.config, write_recipe(tmp_path, name="third", temperatures="[100]"))
    fourth = submit(daemon.config, write_recipe(tmp_path, name="fourth", temperatures="[100]"))
    queue = json.loads(mdfctl("--config", str(daemon.config), "queue", "--json").stdout)
    assert [r["id"] for r in queue] == [second, third, fourth]

    moved = mdfctl("--config", str(daemon.config), "reorder", fourth, third)
    assert moved.returncode == 0, moved.stderr
    dropped = mdfctl("--config", str(daemon.config), "drop", third)
    assert dropped.returncode == 0, dropped.stderr
    queue = json.loads(mdfctl("--config", str(daemon.config), "queue", "--json").stdout)
    assert [r["id"] for r in queue] == [fourth, second]
    # Only queued runs can be dropped or reordered; unknown runs are bad input.
    busy = mdfctl("--config", str(daemon.config), "drop", first)
    assert busy.returncode == 1
    assert "not queued" in busy.stderr
    unknown = mdfctl("--config", str(daemon.config), "reorder", "no-such-run")
    assert unknown.returncode == 1
    missing = mdfctl("--config", str(daemon.config), "show", "no-such-run")
    assert missing.returncode == 2
    assert mdfctl("--config", str(daemon.config), "resume").returncode == 0

    for run_id in (first, fourth, second):
        daemon.wait_status(run_id, "completed")
    runs = {r["id"]: r for r in daemon.get("/runs")}
    assert third not in runs
    started = sorted((runs[r]["started_at"], r) for r in (first, fourth, second))
    assert [r for _, r in started] == [first, fourth, second]
    for run_id in (first, fourth, second):
        count = runs[run_id]["points_total"]
        assert point_rows(daemon.config.parent / "var" / "state", run_id) == [
            (i, "completed") for i in range(count)
        ]


def test_invalid_recipe_is_refused_with_the_lines_of_mdfd_validate(
    daemon: Daemon, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        write_recipe(tmp_path)
        .read_text()
        .replace("[200, 300, 400]", "[200, 1500]")
        .replace("meter.specimen: 1", "meter.nonesuch: 1")
    )
    refused = mdfctl("--config", str(daemon.config), "submit", str(bad))
    assert refused.returncode == 2
    validate = mdfd("validate", str(bad), "--config", str(daemon.config))
    assert validate.returncode == 2
    problems = validate.stderr.strip().splitlines()
    assert any("outside its limits" in p for p in problems)
    assert any("nonesuch" in p for p in problems)
    assert refused.stderr.strip().splitlines()[1:] == problems
    assert daemon.get("/runs") == []


def test_unreachable_daemon_exits_4_naming_the_socket(tmp_path: Path) -> None:
    socket_path = tmp_path / "nobody-here.sock"
    done = mdfctl("--socket", str(socket_path), "status")
    assert done.returncode == 4
    assert str(socket_path) in done.stderr
    config = write_config(tmp_path)
    done = mdfctl("--config", str(config), "runs")
    assert done.returncode == 4
    assert str(tmp_path / "var" / "run" / "control.sock") in done.stderr
