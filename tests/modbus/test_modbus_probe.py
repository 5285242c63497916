"""`mdfd probe` as an engineer runs it: a separate process against a running `mdfd sim`."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdfd.daemons.cli import mdfd as cli
from tests.support import (
    endpoint_port,
    mdf_config,
    mdfd,
    refused_port,
    start_mdfd,
    start_simulators,
    stop_process,
)

pytestmark = pytest.mark.slow


def write_probe_config(var: Path, port: int, dead: int) -> Path:
    """The furnace simulator (TCP on `port`, RTU on a pty), the furnace through both links,
    and an instrument at `dead` where connections are refused."""
    pty = str(var / "run" / "furnace.pty")
    temperature = {"unit": "degC", "table": "input_register", "address": 10, "type": "float32"}
    return mdf_config(
        var,
        mdf={"id": "probe-mdf", "domain": "metal", "site": "KR-TEST"},
        storage={"data_dir": str(var / "data"), "state_dir": str(var / "state")},
        vocabulary=None,
        simulation={"time_scale": 60},
        safety=None,
        instruments={
            "furnace": {
                "driver": "modbus",
                "link": {"type": "tcp", "host": "127.0.0.1", "port": port},
                "channels": {
                    "temperature": temperature,
                    "setpoint": {
                        "unit": "degC",
                        "address": 10,
                        "type": "float32",
                        "writable": True,
                        "limits": {"min": 0, "max": 1400},
                    },
                    "running": {"table": "coil", "address": 0, "type": "bool", "writable": True},
                },
            },
            "furnace_rtu": {
                "driver": "modbus",
                "link": {"type": "rtu", "device": pty},
                "channels": {
                    "temperature": {
                        "unit": "degC",
                        "table": "input_register",
                        "address": 0,
                        "type": "int16",
                        "scale": 0.1,
                    }
                },
            },
            "dead": {
                "driver": "modbus",
                "link": {"type": "tcp", "host": "127.0.0.1", "port": dead},
                "timeout": 0.3,
                "reconnect": {"attempts": 1},
                "channels": {"temperature": temperature},
            },
        },
        simulators={"furnace": {"kind": "furnace", "port": 0, "rtu": {"link": pty}}},
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The simulator picks its port (0) and says which; the config then points there."""
    var = tmp_path_factory.mktemp("probe")
    with refused_port() as dead:
        path = write_probe_config(var, 1, dead)  # the simulator ignores the instruments' port
        process, endpoints = start_simulators(path, logs=var)
        try:
            yield write_probe_config(var, endpoint_port(endpoints["furnace"]["tcp"]), dead)
        finally:
            stop_process(process)


def test_table_of_every_channel(config: Path) -> None:
    result = mdfd("probe", "--config", str(config), "furnace")
    assert result.returncode == 0, result.stderr
    assert "mdfd-sim,FC-1400 furnace controller,1.0" in result.stdout
    for text in ("temperature", "setpoint", "running", "degC", "True"):
        assert text in result.stdout


def test_write_then_json(config: Path) -> None:
    result = mdfd(
        "probe",
        "--config",
        str(config),
        "furnace",
        "setpoint",
        "--write",
        "setpoint=321.5",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["instrument"] == "furnace"
    assert data["identity"] == "mdfd-sim,FC-1400 furnace controller,1.0"
    assert data["channels"]["setpoint"]["value"] == 321.5
    assert data["channels"]["setpoint"]["unit"] == "degC"
    assert list(data["channels"]) == ["setpoint"]


def test_rtu_instrument_over_the_pty(config: Path) -> None:
    result = mdfd("probe", "--config", str(config), "furnace_rtu", "--json")
    assert result.returncode == 0, result.stderr
    temperature = json.loads(result.stdout)["channels"]["temperature"]
    assert 0.0 < temperature["value"] < 1500.0
    assert temperature["unit"] == "degC"


def test_bad_input_exits_2_as_a_process(config: Path) -> None:
    result = mdfd("probe", "--config", str(config), "furnace", "--write", "setpoint=5000")
    assert result.returncode == 2
    assert "outside limits" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["oven"], "no instrument 'oven'"),
        (["furnace", "colour"], "no channel 'colour'"),
        (["furnace", "--write", "temperature=20"], "not writable"),
        (["furnace", "--write", "running=maybe"], "not a boolean"),
        (["furnace", "--write", "setpoint"], "expected CHANNEL=VALUE"),
    ],
)
def test_bad_input_exits_2_before_anything_is_sent(
    config: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # nothing reaches the wire on bad input, so the CLI can run in this process
    assert cli.main(["probe", "--config", str(config), *args]) == 2
    assert message in capsys.readouterr().err


def test_unreachable_instrument_exits_1(config: Path) -> None:
    result = mdfd("probe", "--config", str(config), "dead")
    assert result.returncode == 1
    assert "instrument 'dead' unreachable" in result.stderr
    assert "cannot connect to tcp 127.0.0.1" in result.stderr


def test_write_is_refused_while_a_daemon_holds_the_mdf_and_reads_stay_allowed(
    config: Path, tmp_path: Path
) -> None:
    """Before the lock check, `--write` changed the setpoint under a running daemon, exit 0."""
    state = config.parent / "state"
    daemon = start_mdfd("serve", "--config", str(config), logs=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not (state / "control.sock").exists():
            assert daemon.poll() is None, daemon.err_text()[-3000:]
            assert time.monotonic() < deadline, "daemon did not start serving"
            time.sleep(0.05)
        before = mdfd("probe", "--config", str(config), "furnace", "setpoint", "--json")
        assert before.returncode == 0, before.stderr
        setpoint = json.loads(before.stdout)["channels"]["setpoint"]["value"]
        assert setpoint != 777.0

        refused = mdfd("probe", "--config", str(config), "furnace", "--write", "setpoint=777")
        assert refused.returncode == 2
        assert f"pid {daemon.pid}" in refused.stderr
        assert "serve --config" in refused.stderr

        after = mdfd("probe", "--config", str(config), "furnace", "setpoint", "--json")
        assert after.returncode == 0, after.stderr
        assert json.loads(after.stdout)["channels"]["setpoint"]["value"] == setpoint
    finally:
        stop_process(daemon)


def test_library_log_lines_are_json_without_frame_dumps(tmp_path: Path) -> None:
    """A client sending garbage makes the simulator's pymodbus server log errors (with frame
    hex dumps appended at debug); under --log-json they must be JSON lines like mdfd's own."""
    config = mdf_config(
        tmp_path,
        mdf={"id": "garbled-mdf", "domain": "metal", "site": "KR-TEST"},
        vocabulary=None,
        simulation={"time_scale": 60},
        safety=None,
        instruments={
            "furnace": {
                "driver": "modbus",
                "link": {"type": "tcp", "host": "127.0.0.1", "port": 1},  # never connected
                "channels": {"temperature": {"unit": "degC", "table": "input_register",
                                             "address": 10, "type": "float32"}},
            }
        },
        simulators={"furnace": {"kind": "furnace", "port": 0}},
    )  # fmt: skip
    process, endpoints = start_simulators(config, "--log-json", logs=tmp_path)
    try:
        port = endpoint_port(endpoints["furnace"]["tcp"])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as peer:
            peer.sendall(bytes.fromhex("0001 0000 0006 01 63 0000 0001"))  # function 0x63
            time.sleep(0.3)
            peer.sendall(b"\xde\xad garbage that is no Modbus frame\n")
            time.sleep(0.3)
    finally:
        stop_process(process)
    logged = process.out_text() + process.err_text()
    events = [json.loads(line) for line in logged.splitlines()]  # every line is JSON
    library = [e for e in events if e.get("logger", "").startswith("pymodbus")]
    assert library, "pymodbus logged nothing: the garbage did not reach it"
    assert all(e["level"] in ("warning", "error", "critical") for e in library)
    assert ">>>>>" not in logged
