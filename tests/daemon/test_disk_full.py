"""A full disk under the daemon and under `mdfd run`, on real (tmpfs) file systems.

The run stops `interrupted` with the cause, the daemon stays up and says it waits for disk
space (status, metrics), and the run resumes — every point exactly once — when space is back.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import fill_disk, mdfd, resize_tmpfs, small_tmpfs, start_mdfd

from .harness import Daemon, environment, point_rows, submit, wait_until, write_config, write_recipe

TEMPERATURES = "[200, 210, 220, 230, 240, 250, 260, 270, 280, 290, 300, 310]"


def _config_on(tmp_path: Path, key: str, directory: Path) -> Path:
    """The harness's memory MDF with `storage.<key>` moved to `directory`."""
    config = write_config(tmp_path)
    default = f"{key}: {tmp_path / 'var' / key.removesuffix('_dir')}"
    text = config.read_text()
    assert default in text
    config.write_text(text.replace(default, f"{key}: {directory}"))
    return config


def _held(daemon: Daemon) -> dict:
    return daemon.get("/status")["daemon"]


def test_state_disk_full_under_serve_interrupts_then_resumes(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "fs", "8m") as fs:
        config = _config_on(tmp_path, "state_dir", fs / "state")
        recipe = write_recipe(tmp_path, temperatures=TEMPERATURES)
        daemon = Daemon(config, env=environment()).start()
        try:
            run_id = submit(config, recipe, env=daemon.env)
            daemon.wait_points(run_id, 1)
            ballast = fill_disk(fs / "ballast")
            wait_until(
                lambda: _held(daemon)["state"] == "waiting for disk space", "held runs", daemon
            )
            run = daemon.run(run_id)
            assert run["status"] == "interrupted"
            assert "disk is full" in run["message"]
            assert "waiting for disk space" in _held(daemon)["status"]
            assert 'mdfd_storage_full{mdf="mem-mdf"} 1.0' in daemon.get("/metrics")
            ballast.unlink()
            run = daemon.wait_status(run_id, "completed")
            assert daemon.alive()
            assert 'mdfd_storage_full{mdf="mem-mdf"} 0.0' in daemon.get("/metrics")
            indices = [index for index, _ in point_rows(fs / "state", run_id)]
            assert indices == list(range(12))
        finally:
            daemon.stop()
        log = daemon.log_text()
        assert "work loop crashed" not in log
        assert "waiting for disk space" in log


def test_data_disk_below_the_reserve_holds_the_run_until_space_is_back(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "fs", "16m") as fs:  # below the 64 MiB reserve a run needs
        config = _config_on(tmp_path, "data_dir", fs / "data")
        recipe = write_recipe(tmp_path, temperatures="[200, 300]")
        daemon = Daemon(config, env=environment()).start()
        try:
            run_id = submit(config, recipe, env=daemon.env)
            wait_until(
                lambda: _held(daemon)["state"] == "waiting for disk space", "held runs", daemon
            )
            assert "reserve" in _held(daemon)["status"]
            assert 'mdfd_storage_full{mdf="mem-mdf"} 1.0' in daemon.get("/metrics")
            resize_tmpfs(fs, "128m")
            run = daemon.wait_status(run_id, "completed")
            assert run["points_done"] == 2
        finally:
            daemon.stop()


def test_run_exits_3_interrupted_when_the_data_disk_is_below_the_reserve(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "fs", "16m") as fs:
        config = _config_on(tmp_path, "data_dir", fs / "data")
        recipe = write_recipe(tmp_path, temperatures="[200, 300]")
        done = mdfd("run", "--json", "--config", str(config), str(recipe))
        assert done.returncode == 3, done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        assert summary["status"] == "interrupted"
        assert "reserve" in summary["message"]
        listed = mdfd("runs", "--json", "--config", str(config))
        [run] = json.loads(listed.stdout)
        assert run["status"] == "interrupted"
        assert "reserve" in run["message"]


def test_run_exits_3_interrupted_when_the_state_disk_fills(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "fs", "8m") as fs:
        config = _config_on(tmp_path, "state_dir", fs / "state")
        recipe = write_recipe(tmp_path, temperatures=TEMPERATURES)
        run = start_mdfd("run", "--json", "--config", str(config), str(recipe), logs=tmp_path)
        wait_until(lambda: bool(_points(fs / "state")), "a first point")
        fill_disk(fs / "ballast")
        code, out, err = run.finish(timeout=120)
        assert code == 3, err[-3000:]
        assert "Traceback" not in err
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["status"] == "interrupted"
        assert "disk is full" in summary["message"]
        assert summary["points_done"] < summary["points_total"]


def _points(state_dir: Path) -> list[tuple[int, str]]:
    if not (state_dir / "state.sqlite3").exists():
        return []
    import sqlite3

    try:
        uri = f"file:{state_dir / 'state.sqlite3'}?mode=ro"
        connection = sqlite3.connect(uri, uri=True, timeout=5)
        try:
            return connection.execute("SELECT point_index, status FROM points").fetchall()
        finally:
            connection.close()
    except sqlite3.OperationalError:
        return []


def test_run_on_an_already_full_state_disk_exits_3_without_a_traceback(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "fs", "4m") as fs:
        config = _config_on(tmp_path, "state_dir", fs / "state")
        recipe = write_recipe(tmp_path)
        fill_disk(fs / "ballast")
        done = mdfd("run", "--json", "--config", str(config), str(recipe))
        assert done.returncode == 3, done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        assert "disk full" in done.stderr
