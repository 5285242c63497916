"""Issue 14, "Exact output": what `mdfd run`/`resume`/`runs` print can be copied and used as is."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shlex
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

from mdfd.daemons.core.config import load_config
from mdfd.daemons.launch.summary import resume_command
from tests.support import mdfd, start_mdfd, stop_process

from .conftest import write_config, write_recipe
from .test_run_process import wait_for_points


def _deep(tmp_path: Path) -> Path:
    """A directory whose paths are far longer than 80 columns, where rich used to wrap."""
    deep = tmp_path / ("a-rather-long-directory-name-for-an-operator-" * 2) / "mdf"
    deep.mkdir(parents=True)
    return deep


def test_interrupted_run_prints_a_resume_command_that_works(tmp_path: Path) -> None:
    root = _deep(tmp_path)
    config = write_config(root, scale=200)
    recipe = write_recipe(root, "[200, 250, 300]")
    process = start_mdfd("run", str(recipe), "--config", str(config), logs=tmp_path)
    try:
        wait_for_points(process, root / "var/state/state.sqlite3", 1)
        process.send_signal(signal.SIGINT)
        _, out, err = process.finish(timeout=30)
    finally:
        stop_process(process)
    assert process.returncode == 3, err
    [hint] = [line for line in out.splitlines() if "resume with:" in line]
    words = shlex.split(hint.split("resume with:", 1)[1])
    assert words[:3] == ["mdfd", "resume", "--config"]
    assert words[3] == str(config.resolve())
    assert "--simulate" not in words
    # Verbatim, from another directory: it resumes and completes the run.
    resumed = mdfd(*words[1:], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "completed" in resumed.stdout.splitlines()[0]


def test_resume_command_keeps_simulate_and_an_absolute_config(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    assert shlex.split(resume_command(config, "r-1", simulate=True)) == [
        "mdfd",
        "resume",
        "--config",
        str(config.path.resolve()),
        "r-1",
        "--simulate",
    ]


def test_piped_summary_and_runs_are_whole_lines(tmp_path: Path) -> None:
    root = _deep(tmp_path)
    config = write_config(root)
    done = mdfd("run", str(write_recipe(root, "[200]")), "--config", str(config))
    assert done.returncode == 0, done.stderr
    data_dir = (root / "var" / "data").resolve()
    [data_line] = [line for line in done.stdout.splitlines() if "data:" in line]
    data_file = Path(data_line.split("data: ", 1)[1])
    assert data_file.parent == data_dir
    assert data_file.exists()
    run_id = data_file.stem
    # No `upstream:` in this config: said at the start (log) and in the summary.
    assert "no upstream publishers configured" in done.stderr
    assert any(
        "records:" in line and "not sent anywhere" in line for line in done.stdout.splitlines()
    )
    listed = mdfd("runs", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if run_id in line]
    assert str(data_file) in row


def test_runs_at_120_columns_on_a_terminal_shows_whole_ids(tmp_path: Path) -> None:
    """On a real pty 120 columns wide, the id column is never cut."""
    root = _deep(tmp_path)
    config = write_config(root)
    done = mdfd("run", str(write_recipe(root, "[200]")), "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm"
    process = subprocess.Popen(
        [sys.executable, "-m", "mdfd.daemons.cli.mdfd", "runs", "--config", str(config)],
        stdout=child,
        stderr=child,
        env=env,
    )
    os.close(child)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the child closed the pty
                break
            if not chunk:
                break
            output += chunk
        assert process.wait(timeout=60) == 0
    finally:
        os.close(main)
        stop_process(process)
    text = output.decode(errors="replace")
    run_id = Path(json.loads(done.stdout.splitlines()[-1])["data_file"]).stem
    assert run_id in text
    assert max(len(line) for line in _plain(text).splitlines()) <= 120


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", text).replace("\r", "")


def test_read_only_commands_never_create_state(tmp_path: Path) -> None:
    """A relative state_dir from another directory: exit 2 naming the path, nothing created."""
    config = tmp_path / "mdf.yaml"
    config.write_text(write_config(tmp_path).read_text().replace(str(tmp_path / "var"), "var"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for command in (["runs"], ["outbox"], ["outbox", "retry"], ["outbox", "drain"]):
        done = mdfd(*command, "--config", str(config), cwd=elsewhere)
        assert done.returncode == 2, (command, done.stderr)
        assert f"no state database at {elsewhere / 'var/state/state.sqlite3'}" in done.stderr
    for command in (["export", "r-1", "--csv", "-"], ["plot", "r-1", "--out", "p.png"]):
        done = mdfd(*command, "--config", str(config), cwd=elsewhere)
        assert done.returncode == 2, (command, done.stderr)
        assert "no run 'r-1'" in done.stderr
    assert list(elsewhere.iterdir()) == []


def test_export_csv_dash_writes_stdout(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    done = mdfd("run", str(write_recipe(tmp_path, "[200]")), "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout.splitlines()[-1])["run_id"]
    exported = mdfd("export", "--config", str(config), run_id, "--csv", "-", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert not (tmp_path / "-").exists()
    rows = [row for row in exported.stdout.splitlines() if not row.startswith("#")]
    assert rows[0].startswith("point_index,temperature [degC],")
    assert [row.split(",")[1] for row in rows[1:]] == ["200.0", "200.0"]


def test_validate_locates_a_misspelt_acquired_channel_at_the_typo(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    recipe = write_recipe(tmp_path, "[200]")
    text = recipe.read_text().replace(
        "acquire: {channels: [meter.resistivity, furnace.temperature],",
        "acquire: {channels: [meter.resistivty, furnace.temperature],",
    )
    assert "meter.resistivty" in text
    recipe.write_text(text)
    typo_line = text.splitlines().index(
        next(line for line in text.splitlines() if "meter.resistivty" in line)
    )
    done = mdfd("validate", str(recipe), "--config", str(config))
    assert done.returncode == 2
    [problem] = done.stderr.strip().splitlines()
    assert problem.startswith(f"{recipe}:{typo_line + 1}: steps[")
    assert "'meter.resistivty'" in problem
    assert "record.properties[0].from" in problem


def test_summary_says_where_records_went_and_what_is_undelivered(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    spool = tmp_path / "spool"
    config.write_text(
        config.read_text()
        + f"upstream:\n  publishers: [{{type: file, name: spool, directory: {spool}}}]\n"
    )
    done = mdfd("run", str(write_recipe(tmp_path, "[200]")), "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert f"  records [spool]: file spool {spool}, 0 undelivered" in done.stdout.splitlines()
    assert "no upstream publishers" not in done.stdout + done.stderr
    as_json = mdfd("run", str(write_recipe(tmp_path, "[250]")), "--config", str(config), "--json")
    summary = json.loads(as_json.stdout.splitlines()[-1])
    assert summary["upstream"] == [
        {
            "publisher": "spool",
            "destination": f"file spool {spool}",
            "undelivered": 0,
            "dead_letters": 0,
        }
    ]
    assert summary["resume_command"] is None
