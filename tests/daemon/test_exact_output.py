"""Issue 14, "Exact output": what `mdfctl` and `mdfd` print is what happened, copyable and whole."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mdfd.daemons.cli import mdfctl as ctl
from mdfd.daemons.cli import mdfd as cli
from mdfd.daemons.cli.watch import _Display
from tests.support import mdfd

from .harness import (
    Daemon,
    environment,
    mdfctl,
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


def test_watch_lines_carry_the_parameters_of_the_point_they_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Group commits publish `point_end` for i after `point_start` for i+1."""
    display = _Display({"id": "r", "points_total": 2, "points_done": 0}, as_json=False)
    start = {"event": "point_start", "points_total": 2, "points_done": 0}
    end = {"event": "point_end", "status": "completed", "points_total": 2}
    display.event({**start, "point": 0, "parameters": {"temperature": 200.0}})
    display.event({**start, "point": 1, "parameters": {"temperature": 300.0}})
    display.event({**end, "point": 0, "points_done": 1})
    display.event({**end, "point": 1, "points_done": 2})
    assert capsys.readouterr().out.splitlines() == [
        "point 0 completed (1/2 done) temperature=200",
        "point 1 completed (2/2 done) temperature=300",
    ]


def test_watched_points_match_their_parameters_end_to_end(daemon: Daemon, tmp_path: Path) -> None:
    temperatures = [100 + 25 * i for i in range(12)]
    recipe = write_recipe(tmp_path, temperatures=json.dumps(temperatures), dwell="1 min")
    watched = mdfctl("--socket", str(daemon.socket), "submit", str(recipe), "--watch")
    assert watched.returncode == 0, watched.stderr
    reported = [line.split() for line in watched.stdout.splitlines() if line.startswith("point ")]
    assert [(int(w[1]), w[-1]) for w in reported] == [
        (i, f"temperature={t}") for i, t in enumerate(temperatures)
    ]


def test_show_piped_keeps_paths_and_ids_whole(daemon: Daemon, tmp_path: Path) -> None:
    run_id = submit(daemon.config, write_recipe(tmp_path, temperatures="[200]"))
    daemon.wait_status(run_id, "completed")
    shown = mdfctl("--config", str(daemon.config), "show", run_id)
    assert shown.returncode == 0, shown.stderr
    path = daemon.run(run_id)["files"][0]["path"]
    assert len(path) > 80
    assert f"hdf5: {path} (" in shown.stdout
    runs = mdfctl("--config", str(daemon.config), "runs")
    assert any(
        line.split("│")[1].strip() == run_id for line in runs.stdout.splitlines() if "│" in line
    )


def test_abort_without_an_id_never_reaches_the_next_queued_run(
    daemon: Daemon, tmp_path: Path
) -> None:
    long = "[100, 200, 300, 400, 500, 600, 700, 800]"
    first = submit(
        daemon.config, write_recipe(tmp_path, name="first", temperatures=long, dwell="100 min")
    )
    second = submit(
        daemon.config, write_recipe(tmp_path, name="second", temperatures=long, dwell="100 min")
    )
    third = submit(daemon.config, write_recipe(tmp_path, name="third", temperatures="[100]"))
    daemon.wait_status(first, "running")
    aborted = mdfctl("--config", str(daemon.config), "abort")
    assert aborted.returncode == 0, aborted.stderr
    assert aborted.stdout.strip() == f"abort: {first}"
    assert daemon.wait_status(first, "aborted")["status"] == "aborted"
    daemon.wait_status(second, "running")
    # The operator repeats the command: the run that started meanwhile is not touched.
    again = mdfctl("--config", str(daemon.config), "abort")
    assert again.returncode == 1
    assert f"run {second} started after your last abort; nothing aborted" in again.stderr
    assert daemon.run(second)["status"] == "running"
    by_id = mdfctl("--config", str(daemon.config), "abort", second)
    assert by_id.returncode == 0, by_id.stderr
    assert daemon.wait_status(second, "aborted")["status"] == "aborted"
    assert daemon.wait_status(third, "completed", "aborted")["status"] == "completed"
    idle = mdfctl("--config", str(daemon.config), "abort")
    assert idle.returncode == 1
    assert "no run is executing: nothing aborted" in idle.stderr


def test_global_flags_before_and_after_the_command(daemon: Daemon, tmp_path: Path) -> None:
    run_id = submit(daemon.config, write_recipe(tmp_path, temperatures="[200]"))
    daemon.wait_status(run_id, "completed")
    before = mdfctl("--json", "--config", str(daemon.config), "watch", run_id)
    after = mdfctl("watch", run_id, "--config", str(daemon.config), "--json")
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert before.stdout == after.stdout
    ended = json.loads(before.stdout)
    # The whole `run_end` event, as the live stream sends it (fields only ever added).
    expected = {"event": "run_end", "run": run_id, "status": "completed", "message": ""}
    assert ended.items() >= expected.items()
    assert (ended["run_id"], ended["points_done"], ended["points_total"]) == (run_id, 1, 1)
    status = mdfctl("status", "--socket", str(daemon.socket), "--json")
    assert json.loads(status.stdout)["mdf"]["id"] == "mem-mdf"
    logged = mdfd("runs", "--config", str(daemon.config), "--log-level", "error", "--json")
    assert logged.returncode == 0, logged.stderr
    assert [r["id"] for r in json.loads(logged.stdout)] == [run_id]


@pytest.mark.parametrize("build", [cli.build_parser, ctl.build_parser])
def test_every_command_says_what_it_does_with_an_example(
    build: Callable[[], argparse.ArgumentParser],
) -> None:
    parser = build()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(commands.choices) >= 12
    for name, command in commands.choices.items():
        text = command.format_help()
        assert command.description, name
        assert f"example:\n  {parser.prog} " in text, name
        for action in command._actions:
            assert action.help, (name, action.dest)


def test_submit_warns_when_a_run_starts_far_from_the_run_before_it(
    daemon: Daemon, tmp_path: Path
) -> None:
    sinter = submit(
        daemon.config,
        # Long points: it must still be running when paused, however loaded the machine.
        write_recipe(tmp_path, name="sinter", temperatures="[1250, 1300]", dwell="500 min"),
    )
    daemon.wait_status(sinter, "running")
    # Held while the next runs are queued behind it.
    assert mdfctl("--config", str(daemon.config), "pause", sinter).returncode == 0
    anneal = write_recipe(tmp_path, name="anneal", temperatures="[200]")
    warned = mdfctl("--config", str(daemon.config), "submit", str(anneal))
    assert warned.returncode == 0, warned.stderr
    [warning] = warned.stderr.strip().splitlines()
    assert warning == (
        f"mdfctl: warning: after run {sinter}: furnace.setpoint: this run starts at 200 degC, "
        "the run before it ends at 1300 degC (more than 20% of its limits span 1400 degC); "
        "consider a recipe precondition so point 0 waits for furnace"
    )
    # Close to the run before it (200 -> 300 of a 1400 span): nothing to say.
    near = write_recipe(tmp_path, name="near", temperatures="[300]")
    quiet = mdfctl("--config", str(daemon.config), "submit", str(near), "--json")
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout)["warnings"] == []
    assert quiet.stderr == ""
    # Far again, but the recipe waits for the furnace itself.
    waits = write_recipe(tmp_path, name="waits", temperatures="[1300]")
    waits.write_text(
        "preconditions:\n  - {channel: furnace.temperature, above: 20 degC, timeout: 1 h}\n"
        + waits.read_text()
    )
    assert mdfctl("--config", str(daemon.config), "submit", str(waits)).stderr == ""


def test_a_daemon_without_publishers_says_records_go_nowhere(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    text = config.read_text()
    config.write_text(text[: text.index("upstream:")])
    running = Daemon(config, env=environment()).start()
    try:
        wait_until(
            lambda: "no upstream publishers configured" in running.log_text(),
            "the warning that records go nowhere",
            running,
        )
    finally:
        running.stop()


def test_abort_without_an_id_reaches_a_run_submitted_after_it(
    daemon: Daemon, tmp_path: Path
) -> None:
    long = "[100, 200, 300, 400, 500, 600, 700, 800]"
    first = submit(daemon.config, write_recipe(tmp_path, name="first", temperatures=long))
    daemon.wait_status(first, "running")
    assert mdfctl("--config", str(daemon.config), "abort").returncode == 0
    daemon.wait_status(first, "aborted")
    # Queued only after the abort: the operator saw it start, it is the current run.
    later = submit(
        daemon.config, write_recipe(tmp_path, name="later", temperatures=long, dwell="100 min")
    )
    daemon.wait_status(later, "running")
    aborted = mdfctl("--config", str(daemon.config), "abort")
    assert aborted.returncode == 0, aborted.stderr
    assert aborted.stdout.strip() == f"abort: {later}"
    assert daemon.wait_status(later, "aborted")["status"] == "aborted"
