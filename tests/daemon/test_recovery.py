"""Crashes and stops: kill -9 and SIGTERM mid-run, restart, every point exactly once; one
daemon per MDF."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np

from mdfd.daemons.storage import read_channel, read_summary
from mdfd.daemons.storage.layout import stat_column

from .harness import Daemon, environment, point_rows, submit, write_config, write_recipe

TEMPERATURES = [100, 150, 200, 250, 300, 350, 400, 450]
SAMPLES_PER_POINT = 4


def _recipe(tmp_path: Path) -> Path:
    return write_recipe(tmp_path, temperatures=str(TEMPERATURES))


def _assert_every_point_once(daemon: Daemon, run_id: str) -> None:
    count = len(TEMPERATURES)
    rows = point_rows(daemon.config.parent / "var" / "state", run_id)
    assert rows == [(i, "completed") for i in range(count)]
    run = daemon.run(run_id)
    assert [p["parameters"]["temperature"] for p in run["points"]] == TEMPERATURES
    path = Path(run["files"][0]["path"])
    summary = read_summary(path)
    assert list(summary.columns["point_index"]) == list(range(count))
    np.testing.assert_allclose(summary.columns["temperature"], TEMPERATURES)
    resistivity_n = summary.columns[stat_column("meter.resistivity", "n")]
    assert list(resistivity_n) == [SAMPLES_PER_POINT] * count
    # The samples of a half-measured point vanished: each point's samples exactly once.
    points = read_channel(path, "meter.resistivity").point_index
    assert sorted(points.tolist()) == [i for i in range(count) for _ in range(4)]


def test_kill_9_mid_run_resumes_by_itself_with_every_point_once(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    daemon = Daemon(config, env=environment()).start()
    try:
        run_id = submit(config, _recipe(tmp_path))
        daemon.wait_points(run_id, 3)
        daemon.kill9()
        before = point_rows(config.parent / "var" / "state", run_id)
        assert 3 <= len(before) < len(TEMPERATURES)

        daemon.start()
        final = daemon.wait_status(run_id, "completed")
        assert final["points_done"] == len(TEMPERATURES)
        _assert_every_point_once(daemon, run_id)
        assert "runs left running by a dead process are interrupted" in daemon.log_text()
    finally:
        daemon.stop()


def test_sigterm_stops_cleanly_and_the_run_resumes_on_the_next_start(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    daemon = Daemon(config, env=environment()).start()
    try:
        run_id = submit(config, _recipe(tmp_path))
        daemon.wait_points(run_id, 2)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0
        assert not daemon.socket.exists()
        log = daemon.log_text()
        assert "safe state applied" in log
        assert "data file closed" in log

        daemon.start()
        # Interrupted (not dead mid-run): resumed at its first open point, not re-measured.
        final = daemon.wait_status(run_id, "completed")
        assert final["points_done"] == len(TEMPERATURES)
        _assert_every_point_once(daemon, run_id)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0
    finally:
        daemon.stop()
    rows = point_rows(config.parent / "var" / "state", run_id)
    assert len(rows) == len(TEMPERATURES)


def test_a_second_daemon_on_the_same_mdf_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    first = Daemon(config, env=environment()).start()
    second = Daemon(config, env=environment(), log=tmp_path / "second.log")
    try:
        second.start(wait=False)
        assert second.wait_exit() == 2
        assert "another mdfd process" in second.log_text()
        assert f"pid {first.process.pid}" in second.log_text()  # type: ignore[union-attr]
        # The first one never noticed.
        assert first.get("/status")["daemon"]["pid"] == first.process.pid  # type: ignore[union-attr]
    finally:
        second.stop()
        first.stop()


def test_a_second_daemon_on_the_same_runtime_dir_exits_2_and_leaves_the_first_reachable(
    tmp_path: Path,
) -> None:
    """Different MDFs (state directories), one runtime_dir: the control socket stays the
    first daemon's — before the lock, the second took it over and deleted it on exit."""
    config = write_config(tmp_path)
    other_root = tmp_path / "other"
    other_root.mkdir()
    other = other_root / "mdf.yaml"
    text = config.read_text()
    var = str(tmp_path / "var")
    other.write_text(
        text.replace(f"{var}/state", f"{other_root}/state").replace(
            f"{var}/data", f"{other_root}/data"
        )
    )
    first = Daemon(config, env=environment()).start()
    second = Daemon(other, env=environment(), log=tmp_path / "second.log")
    try:
        second.start(wait=False)
        assert second.wait_exit() == 2
        log = second.log_text()
        assert "runtime directory" in log
        assert f"pid {first.process.pid}" in log  # type: ignore[union-attr]
        assert "serve --config" in log
        assert first.socket.exists()
        assert first.get("/status")["daemon"]["pid"] == first.process.pid  # type: ignore[union-attr]
    finally:
        second.stop()
        first.stop()
