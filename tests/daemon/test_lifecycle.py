"""Nothing runs that nobody decided: a `mdfd run` that never started ends failed; runs a person
executed are held by a daemon started later (the daemon's own runs resume); the policy is the
config's; a run can be discarded offline; a state database from before origins still opens."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import SIM_CONFIG, mdfd, sim_env, start_mdfd, stop_process

from .harness import (
    WAIT,
    Daemon,
    environment,
    mdfctl,
    point_rows,
    submit,
    wait_until,
    write_config,
    write_recipe,
)

TEMPERATURES = [100, 150, 200, 250, 300, 350, 400, 450]
SIM_RECIPE = """\
recipe: {name: sim-port, version: "1"}
sweep:
  parameters:
    temperature: {unit: degC, values: [300, 600]}
steps:
  - set: {furnace.setpoint: temperature}
  - acquire: {channels: [furnace.temperature], rate: 0.1, count: 3}
"""


def _state_dir(config: Path) -> Path:
    return config.parent / "var" / "state"


def _runs(config: Path, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    done = mdfd("runs", "--config", str(config), "--json", env=env or environment())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _run_ids(state_dir: Path) -> list[str]:
    database = state_dir / "state.sqlite3"
    if not database.exists():
        return []
    uri = f"file:{database}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=WAIT)) as connection:
        try:
            return [row[0] for row in connection.execute("SELECT id FROM runs")]
        except sqlite3.OperationalError:  # created, its schema not yet
            return []


def _cli_run_stopped_mid_run(tmp_path: Path, config: Path, signum: int) -> tuple[str, int]:
    """`mdfd run` as a person starts it, stopped by `signum` after two points; (id, exit)."""
    recipe = write_recipe(tmp_path, name="by-hand", temperatures=str(TEMPERATURES))
    process = start_mdfd(
        "run", "--json", "--config", str(config), str(recipe), logs=tmp_path, env=environment()
    )
    state = _state_dir(config)
    try:
        found: list[str] = []

        def two_points() -> bool:
            assert process.poll() is None, process.err_text()[-3000:]
            found[:] = _run_ids(state)
            return bool(found) and len(point_rows(state, found[0])) >= 2

        wait_until(two_points, "the CLI run to record two points")
        process.send_signal(signum)
        code = process.wait(timeout=WAIT)
    finally:
        stop_process(process)
    return found[0], code


def _after_recovery(daemon: Daemon, run_id: str) -> dict[str, Any]:
    """The run once the daemon's start-up recovery has decided it (the control API answers
    a moment before): held, or — the bug — executed to its end."""
    return daemon.wait_status(run_id, "held", "completed", "failed", "aborted")


def _by_id(runs: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    return next(run for run in runs if run["id"] == run_id)


def test_a_cli_run_whose_simulator_port_is_taken_leaves_nothing_to_run(
    tmp_path: Path,
) -> None:
    """Before: the run stayed `queued` (traceback) and the next `mdfd serve` ran it. Now the
    taken port is found before any run exists: exit 2 naming it, nothing queued."""
    env = sim_env(tmp_path / "var")
    port = int(env["MDFD_FURNACE_PORT"])
    recipe = tmp_path / "sim-port.yaml"
    recipe.write_text(SIM_RECIPE)
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = mdfd(
            "run", "--json", "--simulate", "--config", str(SIM_CONFIG), str(recipe), env=env
        )
    assert done.returncode == 2, done.stderr
    assert str(port) in done.stderr
    assert "MDFD_FURNACE_PORT" in done.stderr
    state = tmp_path / "var" / "sim-mdf-01" / "state" / "state.sqlite3"
    assert not state.exists() or _runs(SIM_CONFIG, env) == []


def test_a_cli_run_whose_data_file_cannot_be_opened_ends_failed_with_the_cause(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Before: a traceback, exit 1, and the run left `queued` for the next daemon to run."""
    config = write_config(tmp_path)
    # A data directory that exists but holds no new file: a read-only file system (refuses
    # root as well as anyone, unlike file modes; a path too long is refused by validation).
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=512m", "tmpfs", str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.strip()}")
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(data_dir)], check=False))
    config.write_text(config.read_text().replace(f"{tmp_path / 'var'}/data", str(data_dir)))
    recipe = write_recipe(tmp_path)
    done = mdfd("run", "--json", "--config", str(config), str(recipe), env=environment())
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "failed"
    assert outcome["message"].startswith("data file cannot be opened")
    [run] = _runs(config)
    assert (run["status"], run["points_done"]) == ("failed", 0)
    assert run["message"] == outcome["message"]


def test_a_run_a_person_started_is_held_by_the_daemon_until_mdfctl_resume(
    tmp_path: Path,
) -> None:
    """Before: the daemon's first action was resuming the interrupted CLI run, unasked."""
    config = write_config(tmp_path)
    run_id, code = _cli_run_stopped_mid_run(tmp_path, config, signal.SIGINT)
    assert code == 3
    before = point_rows(_state_dir(config), run_id)
    assert 2 <= len(before) < len(TEMPERATURES)
    assert _by_id(_runs(config), run_id)["origin"] == "cli"

    daemon = Daemon(config, env=environment()).start()
    try:
        assert _after_recovery(daemon, run_id)["status"] == "held"
        status = mdfctl("--config", str(config), "status")
        assert status.returncode == 0, status.stderr
        assert "held: `mdfctl resume RUN` continues it" in status.stdout
        assert "by-hand 1" in status.stdout
        status = mdfctl("--config", str(config), "status", "--json")
        assert [r["id"] for r in json.loads(status.stdout)["held"]] == [run_id]
        assert json.loads(status.stdout)["queue"] == []
        # The queue goes on without it: a run submitted now completes, the held one waits.
        other = submit(config, write_recipe(tmp_path, name="queued-after"))
        daemon.wait_status(other, "completed")
        assert daemon.run(run_id)["status"] == "held"
        assert point_rows(_state_dir(config), run_id) == before

        resumed = mdfctl("--config", str(config), "resume", run_id)
        assert resumed.returncode == 0, resumed.stderr
        final = daemon.wait_status(run_id, "completed")
        assert final["origin"] == "daemon"
        rows = point_rows(_state_dir(config), run_id)
        assert rows == [(i, "completed") for i in range(len(TEMPERATURES))]
    finally:
        daemon.stop()


def test_a_cli_run_killed_9_is_held_too(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    run_id, code = _cli_run_stopped_mid_run(tmp_path, config, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert _by_id(_runs(config), run_id)["status"] == "running"  # as the dead process left it
    daemon = Daemon(config, env=environment()).start()
    try:
        run = _after_recovery(daemon, run_id)
        assert run["status"] == "held"
        assert "process died mid-run" in run["message"]
        abort = mdfctl("--config", str(config), "abort", run_id)
        assert abort.returncode == 0, abort.stderr
        assert daemon.run(run_id)["status"] == "aborted"
    finally:
        daemon.stop()


def test_the_recovery_policy_is_the_configs(tmp_path: Path) -> None:
    """Reversed policy: the person's run resumes by itself, the daemon's own run is held."""
    config = write_config(tmp_path, extra="recovery: {cli_runs: resume, daemon_runs: hold}")
    cli_run, code = _cli_run_stopped_mid_run(tmp_path, config, signal.SIGINT)
    assert code == 3
    daemon = Daemon(config, env=environment()).start()
    try:
        daemon.wait_status(cli_run, "completed")
        daemon_run = submit(config, write_recipe(tmp_path, temperatures=str(TEMPERATURES)))
        daemon.wait_points(daemon_run, 2)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0
        daemon.start()
        assert _after_recovery(daemon, daemon_run)["status"] == "held"
    finally:
        daemon.stop()


def test_default_policy_resumes_the_daemons_own_run(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    daemon = Daemon(config, env=environment()).start()
    try:
        run_id = submit(config, write_recipe(tmp_path, temperatures=str(TEMPERATURES)))
        daemon.wait_points(run_id, 2)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0
        daemon.start()
        assert daemon.wait_status(run_id, "completed")["origin"] == "daemon"
    finally:
        daemon.stop()


def test_discard_offline_and_refused_while_a_daemon_holds_the_mdf(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    run_id, code = _cli_run_stopped_mid_run(tmp_path, config, signal.SIGINT)
    assert code == 3
    daemon = Daemon(config, env=environment()).start()
    try:
        refused = mdfd("runs", "--config", str(config), "discard", run_id, env=environment())
        assert refused.returncode == 2
        assert f"pid {daemon.process.pid}" in refused.stderr  # type: ignore[union-attr]
        assert _after_recovery(daemon, run_id)["status"] == "held"
    finally:
        daemon.stop()
    done = mdfd("runs", "--config", str(config), "discard", run_id, env=environment())
    assert done.returncode == 0, done.stderr
    run = _by_id(_runs(config), run_id)
    assert (run["status"], run["message"]) == ("aborted", "discarded offline by operator")
    again = mdfd("runs", "--config", str(config), "discard", run_id, env=environment())
    assert again.returncode == 2
    assert "aborted; nothing to discard" in again.stderr


OLD_SCHEMA = """
CREATE TABLE runs (
    id TEXT PRIMARY KEY, recipe_name TEXT NOT NULL, recipe_version TEXT NOT NULL,
    recipe_sha256 TEXT NOT NULL, recipe_text TEXT NOT NULL, recipe_path TEXT NOT NULL DEFAULT '',
    config_text TEXT NOT NULL, status TEXT NOT NULL, points_total INTEGER NOT NULL,
    queue_position REAL, created_at REAL NOT NULL, started_at REAL, ended_at REAL,
    data_file TEXT NOT NULL DEFAULT '', identities TEXT NOT NULL DEFAULT '{}',
    message TEXT NOT NULL DEFAULT ''
);
"""


def test_a_state_database_from_before_origins_opens_and_its_unfinished_runs_are_held(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    state = _state_dir(config)
    state.mkdir(parents=True)
    recipe = write_recipe(tmp_path)
    with contextlib.closing(sqlite3.connect(state / "state.sqlite3")) as connection:
        connection.executescript(OLD_SCHEMA)
        connection.execute(
            "INSERT INTO runs (id, recipe_name, recipe_version, recipe_sha256, recipe_text,"
            " config_text, status, points_total, queue_position, created_at, started_at)"
            " VALUES ('old-run', 'daemon-test', '1', 'x', ?, ?, 'interrupted', 3, 1, 1, 1)",
            (recipe.read_text(), config.read_text()),
        )
        connection.commit()
    [run] = _runs(config)
    assert (run["id"], run["status"], run["origin"]) == ("old-run", "interrupted", "unknown")
    daemon = Daemon(config, env=environment()).start()
    try:
        assert _after_recovery(daemon, "old-run")["status"] == "held"
    finally:
        daemon.stop()


def test_a_cli_run_with_a_forgotten_simulate_is_held_by_a_daemon_started_later(
    tmp_path: Path,
) -> None:
    """Before: `mdfd serve --simulate` resumed it as its first action, nobody having asked."""
    env = sim_env(tmp_path / "var")
    recipe = tmp_path / "sim-forgotten.yaml"
    recipe.write_text(SIM_RECIPE)
    done = mdfd("run", "--json", "--config", str(SIM_CONFIG), str(recipe), env=env)
    assert done.returncode == 3, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "interrupted"
    assert "instruments unavailable" in outcome["message"]
    daemon = Daemon(SIM_CONFIG, "--simulate", env=env, log=tmp_path / "serve.log")
    daemon.socket = tmp_path / "var" / "sim-mdf-01" / "run" / "control.sock"
    daemon.start()
    try:
        run = _after_recovery(daemon, outcome["run_id"])
        assert run["status"] == "held"
        assert "instruments unavailable" in run["message"]
        assert run["points_done"] == 0
    finally:
        daemon.stop()
