"""Hostile clients against a real `mdfd serve`: nothing they send blocks or breaks the daemon.

Alias bombs, huge bodies and deep JSON are answered 4xx while `/status` keeps answering; idle
TCP connections beyond the cap are refused at once and closed after the idle timeout, so the
UNIX socket and the log stay usable; rows the listing cannot show never hide the others.
"""

from __future__ import annotations

import http.client
import json
import resource
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port, mdfd, retry_port_race

from .harness import (
    WAIT,
    Daemon,
    environment,
    http_request,
    mdfctl,
    wait_until,
    write_config,
    write_recipe,
)

TOKEN = "hostile-test-token"
CAP = 6


def alias_bomb(levels: int = 9) -> bytes:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, int]]:
    def attempt() -> tuple[Daemon, int]:
        """The control port must be in the config before the daemon binds it: free_port."""
        port = free_port()
        extra = (
            "control:\n"
            f"  tcp: {{host: 127.0.0.1, port: {port}, token_env: MDFD_TEST_TOKEN,"
            f" max_connections: {CAP}, idle_timeout: 5}}\n"
            "  body_timeout: 1\n"
            "limits: {max_points: 50}\n"
        )
        (tmp_path / "serve.log").unlink(missing_ok=True)
        config = write_config(tmp_path, extra=extra)
        return Daemon(config, env=environment(MDFD_TEST_TOKEN=TOKEN)).start(), port

    served, port = retry_port_race(attempt)
    try:
        yield served, port
    finally:
        served.stop()


def test_hostile_recipes_are_refused_located_and_status_still_answers(
    daemon: tuple[Daemon, int], tmp_path: Path
) -> None:
    served, _ = daemon
    recipe = write_recipe(tmp_path).read_text()
    cases = {
        "bomb.yaml": (alias_bomb(), "bomb.yaml:6: a5[0]: more than 100000 nodes"),
        "list.yaml": (
            b"x: [" + b",".join([b"1"] * 150_000) + b"]\n",
            "list.yaml:1: x[99997]: more than 100000 nodes",
        ),
        "unit.yaml": (
            recipe.replace("unit: degC", "unit: " + "m*" * 10_000 + "m").encode(),
            "unit.yaml:5: sweep.parameters.temperature.unit: String should have at most 64",
        ),
        "sweep.yaml": (
            recipe.replace("[200, 300, 400]", str(list(range(300, 400)))).encode(),
            "sweep.yaml:3: sweep: the sweep has 100 points; this MDF allows 50",
        ),
        "deep.yaml": (b"x: " + b"[" * 5000 + b"]" * 5000, "deep.yaml:1: "),
        "nul.yaml": (
            recipe.replace('version: "1"', 'version: "1\\0"').encode(),
            "nul.yaml:2: recipe.version: contains a control character",
        ),
    }
    for name, (body, expected) in cases.items():
        status, data = served.request("POST", "/runs", body, {"X-Recipe-Name": name})
        assert status == 422, (name, status, data)
        assert data["problems"][0].startswith(expected), (name, data)
        assert served.get("/status")["daemon"]["state"] in ("idle", "running")
    assert served.get("/runs") == []


def test_a_body_sent_too_slowly_is_a_408(daemon: tuple[Daemon, int]) -> None:
    served, _ = daemon
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(WAIT)
        raw.connect(str(served.socket))
        raw.sendall(b"POST /runs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nrecipe:")
        reply = raw.recv(4096)
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert b"request body not received within 1 s" in reply
    assert served.get("/runs") == []


def test_a_check_that_outlasts_validation_timeout_is_a_503_and_queues_nothing(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, extra="control: {validation_timeout: 0.001}\n")
    served = Daemon(config, env=environment()).start()
    try:
        recipe = write_recipe(tmp_path).read_text()
        big = recipe.replace(
            "values: [200, 300, 400]", "linspace: {start: 200, stop: 400, num: 99999}"
        )
        status, data = served.request("POST", "/runs", big.encode())
        assert status == 503, data
        assert data == {
            "error": "checking the recipe took longer than 0.001 s (control.validation_timeout)"
        }
        assert served.get("/status")["queue"] == []
        assert served.get("/runs") == []
    finally:
        served.stop()


def test_deeply_nested_json_is_a_400(daemon: tuple[Daemon, int]) -> None:
    served, _ = daemon
    status, data = served.request("POST", "/queue", b"[" * 100_000 + b"]" * 100_000)
    assert status == 400
    assert data == {"error": "malformed request body: nested too deeply"}
    assert "Traceback" not in served.log_text()


def _connect(port: int) -> socket.socket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    raw.settimeout(WAIT)
    return raw


def _tcp_status(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return http_request(connection, "GET", "/status", None, headers)[0]


def test_idle_connections_beyond_the_cap_are_refused_and_idle_ones_closed(
    daemon: tuple[Daemon, int],
) -> None:
    served, port = daemon
    idle = [_connect(port) for _ in range(CAP)]
    extra = [_connect(port) for _ in range(3 * CAP)]
    try:
        for index, raw in enumerate(extra):
            reply = raw.recv(4096)
            assert reply.startswith(b"HTTP/1.1 503 "), (index, reply, served.log_text()[-3000:])
            assert b'"too many control connections"' in reply
        # The UNIX socket is untouched by the flood.
        done = mdfctl("--socket", str(served.socket), "status", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["mdf"]["id"] == "mem-mdf"
        # The idle connections are closed by the daemon (recv sees EOF), which frees the cap.
        for raw in idle:
            assert raw.recv(4096) == b""
        assert _tcp_status(port) == 200
    finally:
        for raw in idle + extra:
            raw.close()
    log = served.log_text()
    assert log.count("control connection refused") <= 5
    assert "Traceback" not in log


def test_a_request_without_the_token_is_refused_before_its_body(
    daemon: tuple[Daemon, int],
) -> None:
    served, port = daemon
    with _connect(port) as raw:
        raw.sendall(b"POST /runs HTTP/1.1\r\nHost: x\r\nContent-Length: 900000\r\n\r\nrecipe:")
        reply = b""
        while chunk := raw.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 401 ")
    assert reply.endswith(b'{"error": "missing or wrong bearer token"}')
    assert served.get("/runs") == []


def test_a_flood_of_garbage_costs_the_log_a_few_lines(daemon: tuple[Daemon, int]) -> None:
    served, port = daemon
    before = len(served.log_text().splitlines())
    for index in range(200):
        with _connect(port) as raw:
            raw.sendall(b"\x16\x03\x01 not http %d\r\n\r\n" % index)
            assert raw.recv(4096).split()[1].startswith(b"4")
    assert _tcp_status(port) == 200
    added = served.log_text().splitlines()[before:]
    assert len(added) <= 10, added[:20]
    assert "Traceback" not in served.log_text()


def test_running_out_of_descriptors_is_logged_a_few_times_not_per_connection(
    tmp_path: Path,
) -> None:
    """A cap set above what the process may open (here 128 descriptors): asyncio's accept
    loop fails every second, each time with a traceback, until the throttle holds it."""
    port = free_port()
    extra = (
        f"control:\n  tcp: {{host: 127.0.0.1, port: {port}, token_env: MDFD_TEST_TOKEN,"
        " max_connections: 4096}\n"
    )
    served = Daemon(write_config(tmp_path, extra=extra), env=environment(MDFD_TEST_TOKEN=TOKEN))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
    try:
        served.start(wait=False)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    flood: list[socket.socket] = []
    try:
        wait_until(lambda: _tcp_status_or_none(port) == 200, "the daemon serving", served)
        flood = [_connect(port) for _ in range(250)]
        wait_until(lambda: "out of system resource" in served.log_text(), "the accept loop failing")
        # Unthrottled, this wrote 109,245 lines in ten seconds; three are plenty to tell.
        deadline = time.monotonic() + 3
        wait_until(lambda: time.monotonic() > deadline, "three seconds of flood")
        log = served.log_text()
        assert log.count("socket.accept() out of system resource") <= 5
        assert log.count("Traceback") <= 5
        for raw in flood:
            raw.close()
        flood = []
        wait_until(lambda: _tcp_status_or_none(port) == 200, "the daemon serving again", served)
    finally:
        for raw in flood:
            raw.close()
        served.stop()


def _tcp_status_or_none(port: int) -> int | None:
    try:
        return _tcp_status(port)
    except OSError:
        return None


def test_a_slowloris_request_is_closed_by_the_idle_timeout(daemon: tuple[Daemon, int]) -> None:
    _, port = daemon
    with _connect(port) as raw:
        raw.sendall(b"GET /status HTTP/1.1\r\n")
        started = time.monotonic()
        closed = b""
        while time.monotonic() - started < WAIT:
            raw.sendall(b"X-Drip: 1\r\n")
            try:
                raw.settimeout(0.5)
                closed = raw.recv(4096)
                break
            except TimeoutError:
                continue
        assert closed == b""  # closed without an answer, well before WAIT


def _insert_run(state: Path, run_id: str, name: str, status: str, identities: str = "{}") -> None:
    with sqlite3.connect(state / "state.sqlite3", timeout=WAIT) as connection:
        connection.execute(
            "INSERT INTO runs (id, recipe_name, recipe_version, recipe_sha256, recipe_text,"
            " config_text, status, points_total, created_at, data_file, identities)"
            " VALUES (?, ?, '1', '', '', '', ?, 1, ?, ?, ?)",
            (run_id, name, status, time.time(), f"{state}/{run_id}.h5", identities),
        )


def test_one_unreadable_run_never_breaks_a_listing(
    daemon: tuple[Daemon, int], tmp_path: Path
) -> None:
    """Rows an older version could write: a 300-character name (its data file name is too
    long for the file system) and rows this version cannot decode."""
    served, _ = daemon
    state = tmp_path / "var" / "state"
    long_id = "20260101T000000Z-" + "n" * 300 + "-abcd"
    _insert_run(state, long_id, "n" * 300, "failed")
    _insert_run(state, "bad-status", "x", "no-such-status")
    _insert_run(state, "bad-json", "x", "failed", identities="{not json")
    listed = served.get("/runs")
    assert [run["id"] for run in listed] == [long_id]
    shown = served.run(long_id)
    assert shown["files"][0]["exists"] is False
    assert "too long" in shown["files"][0]["error"]
    done = mdfctl("--socket", str(served.socket), "runs", "--json")
    assert done.returncode == 0, done.stderr
    assert [run["id"] for run in json.loads(done.stdout)] == [long_id]
    offline = mdfd("runs", "--config", str(served.config), "--json")
    assert offline.returncode == 0, offline.stderr
    assert [run["id"] for run in json.loads(offline.stdout)] == [long_id]
    assert "unreadable run row skipped" in served.log_text()


def test_mdfctl_refuses_to_send_a_device_as_a_recipe(tmp_path: Path) -> None:
    done = mdfctl("--socket", str(tmp_path / "none.sock"), "submit", "/dev/zero")
    assert done.returncode == 2
    assert done.stderr == "mdfctl: cannot read /dev/zero: not a regular file\n"
