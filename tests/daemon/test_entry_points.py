"""What an operator reads when a command fails: one line with the cause and the documented exit
code, never a traceback (that goes to the log at debug level); and `--version`."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from mdfd.daemons.cli import mdfctl as ctl
from mdfd.daemons.cli import mdfd as cli
from mdfd.daemons.cli.commands import runs
from mdfd.daemons.core.logging import configure
from tests.support import EXAMPLES, SIM_CONFIG, mdfd, sim_env

from .harness import mdfctl

SIM_COMMANDS = {
    "run": ("run", "--config", str(SIM_CONFIG), str(EXAMPLES / "metal-annealing.yaml")),
    "serve": ("serve", "--config", str(SIM_CONFIG)),
}


@pytest.fixture(autouse=True)
def default_logging() -> Iterator[None]:
    """`main(["--log-level", "debug", ...])` configures logging for the whole process."""
    yield
    configure()


@pytest.mark.parametrize("command", SIM_COMMANDS)
def test_os_error_is_one_line_naming_the_path_exit_1(tmp_path: Path, command: str) -> None:
    """The config's storage root is a regular file: the state/data directory cannot exist."""
    not_a_directory = tmp_path / "var"
    not_a_directory.write_text("")
    result = mdfd(*SIM_COMMANDS[command], env=sim_env(not_a_directory), timeout=60)
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"mdfd: {not_a_directory}/sim-mdf-01/")
    assert line.endswith(": Not a directory")


def test_debug_log_level_shows_the_traceback(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "var"
    not_a_directory.write_text("")
    env = sim_env(not_a_directory)
    result = mdfd("--log-level", "debug", *SIM_COMMANDS["run"], env=env, timeout=60)
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "NotADirectoryError" in result.stderr
    assert result.stderr.splitlines()[-1].endswith(": Not a directory")


def test_a_bug_is_one_line_saying_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: object) -> int:
        return 1 // 0

    monkeypatch.setattr(runs, "handle", broken)
    assert cli.main(["runs", "--config", str(SIM_CONFIG)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "mdfd: internal error: ZeroDivisionError: integer division or modulo by zero "
        "(a bug: rerun with --log-level debug for the traceback, and report it)"
    ]
    assert cli.main(["--log-level", "debug", "runs", "--config", str(SIM_CONFIG)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "in broken" in err  # the frame that raised


def test_mdfctl_bug_is_one_line_and_debug_logs_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async def broken(args: object, client: object) -> int:
        raise KeyError("points")

    monkeypatch.setattr(ctl, "_dispatch", broken)
    socket = str(tmp_path / "control.sock")
    assert ctl.main(["--socket", socket, "status"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "mdfctl: internal error: KeyError: 'points' "
        "(a bug: rerun with --debug for the traceback, and report it)"
    ]
    assert ctl.main(["--debug", "--socket", socket, "status"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "in broken" in err  # the frame that raised


def test_mdfctl_malformed_url_is_bad_input() -> None:
    result = mdfctl(
        "--url", "notaurl", "status", env=sim_env(Path("unused"), MDFD_CONTROL_TOKEN="t")
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["mdfctl: --url 'notaurl': expected http(s)://host:port"]


def test_version() -> None:
    assert mdfd("--version").stdout == f"mdfd {version('mdfd')}\n"
    assert mdfctl("--version").stdout == f"mdfctl {version('mdfd')}\n"
