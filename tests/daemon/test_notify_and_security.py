"""systemd notifications from a real daemon process, and the control API's defences."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import stat
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port, retry_port_race

from .harness import (
    WAIT,
    Daemon,
    environment,
    http_request,
    mdfctl,
    submit,
    write_config,
    write_recipe,
)

TOKEN = "s3cret-token-for-tests"


class Receiver:
    """The service manager's end, read on a thread so the datagram queue never fills."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.messages: list[dict[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify-receiver")
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            fields = (line.split("=", 1) for line in data.decode().split("\n") if line)
            self.messages.append(dict(fields))

    def close(self) -> list[dict[str, str]]:
        self._stop.set()
        self._thread.join(WAIT)
        self.sock.close()
        return self.messages


def test_sd_notify_ready_status_watchdog_stopping_in_order(tmp_path: Path) -> None:
    address = f"/tmp/mdfd-notify-{uuid.uuid4().hex[:12]}.sock"
    receiver = Receiver(address)
    config = write_config(tmp_path)
    # 400 ms watchdog -> the daemon pings every 200 ms while its work loop progresses.
    env = environment(NOTIFY_SOCKET=address, WATCHDOG_USEC="400000")
    daemon = Daemon(config, env=env).start()
    try:
        run_id = submit(config, write_recipe(tmp_path))
        daemon.wait_status(run_id, "completed")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0
    finally:
        daemon.stop()
        messages = receiver.close()
        Path(address).unlink()

    kinds = [
        next(k for k in ("READY", "STOPPING", "WATCHDOG", "STATUS") if k in m) for m in messages
    ]
    assert kinds[0] == "READY"
    assert kinds.count("READY") == 1
    assert kinds.count("STOPPING") == 1
    stopping = kinds.index("STOPPING")
    assert messages[stopping]["STATUS"] == "stopping: SIGTERM"
    # While the work loop winds down it may still prove progress; nothing else follows.
    assert set(kinds[stopping + 1 :]) <= {"WATCHDOG"}
    assert all(m["WATCHDOG"] == "1" for m in messages if "WATCHDOG" in m)
    statuses = [m["STATUS"] for m in messages[1:stopping] if "STATUS" in m]
    point_lines = [s for s in statuses if s.startswith(f"run {run_id}: point")]
    # Points are shown by their 0-based index, as in the data files and `mdfd plan`.
    assert [line.split()[3:6] for line in point_lines] == [
        ["0", "of", "3"],
        ["1", "of", "3"],
        ["2", "of", "3"],
    ]
    assert point_lines[1].endswith("temperature=300")
    assert statuses[-1] == "idle"
    # READY, then STATUS lines of the run, watchdog pings among them, then STOPPING.
    first_run_status = kinds.index("STATUS")
    assert 0 < first_run_status < stopping
    assert "WATCHDOG" in kinds[1:stopping]


@pytest.fixture
def tcp_daemon(tmp_path: Path) -> Iterator[tuple[Daemon, int]]:
    def attempt() -> tuple[Daemon, int]:
        """The control port must be in the config before the daemon binds it: free_port."""
        port = free_port()
        extra = (
            "control:\n"
            f"  tcp: {{host: 127.0.0.1, port: {port}, token_env: MDFD_TEST_TOKEN}}\n"
            "  max_request_bytes: 8192\n"
        )
        (tmp_path / "serve.log").unlink(missing_ok=True)
        config = write_config(tmp_path, extra=extra)
        return Daemon(config, env=environment(MDFD_TEST_TOKEN=TOKEN)).start(), port

    daemon, port = retry_port_race(attempt)
    try:
        yield daemon, port
    finally:
        daemon.stop()


def _tcp(port: int, method: str, path: str, token: str | None, body: bytes | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return http_request(
        http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT), method, path, body, headers
    )


def test_tcp_needs_the_bearer_token(tcp_daemon: tuple[Daemon, int], tmp_path: Path) -> None:
    daemon, port = tcp_daemon
    for path in ("/status", "/runs", "/metrics", "/events"):
        status, body = _tcp(port, "GET", path, None)
        assert status == 401
        assert body == {"error": "missing or wrong bearer token"}
    assert _tcp(port, "GET", "/status", "wrong")[0] == 401
    assert _tcp(port, "GET", "/status", TOKEN + "x")[0] == 401
    recipe = write_recipe(tmp_path).read_bytes()
    assert _tcp(port, "POST", "/runs", "wrong", recipe)[0] == 401
    assert daemon.get("/runs") == []  # nothing was queued by the refused request
    status, data = _tcp(port, "GET", "/status", TOKEN)
    assert status == 200
    assert data["mdf"]["id"] == "mem-mdf"

    url = f"http://127.0.0.1:{port}"
    ok = mdfctl(
        "--url",
        url,
        "--token-env",
        "MDFD_TEST_TOKEN",
        "status",
        "--json",
        env=environment(MDFD_TEST_TOKEN=TOKEN),
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["daemon"]["pid"] == daemon.process.pid  # type: ignore[union-attr]
    refused = mdfctl(
        "--url",
        url,
        "--token-env",
        "MDFD_TEST_TOKEN",
        "status",
        env=environment(MDFD_TEST_TOKEN="guess"),
    )
    assert refused.returncode == 1
    assert "token" in refused.stderr
    unset = mdfctl("--url", url, "--token-env", "MDFD_NO_SUCH_TOKEN", "status")
    assert unset.returncode == 2


def test_a_run_submitted_and_watched_over_tcp_with_the_token(
    tcp_daemon: tuple[Daemon, int], tmp_path: Path
) -> None:
    """The submit's body and the chunked NDJSON event stream over TCP with the bearer token:
    `mdfctl`'s own HTTP client (standard library, ADR 0085)."""
    _, port = tcp_daemon
    watched = mdfctl(
        "--url",
        f"http://127.0.0.1:{port}",
        "--token-env",
        "MDFD_TEST_TOKEN",
        "submit",
        str(write_recipe(tmp_path)),
        "--json",
        "--watch",
        env=environment(MDFD_TEST_TOKEN=TOKEN),
    )
    assert watched.returncode == 0, watched.stderr
    answer, *events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert answer["points_total"] == 3
    ends = [e for e in events if e["event"] == "point_end"]
    assert [e["point"] for e in ends] == [0, 1, 2]
    assert (events[-1]["event"], events[-1]["status"]) == ("run_end", "completed")


def test_socket_is_0660_and_bad_requests_get_4xx_while_serving_on(
    tcp_daemon: tuple[Daemon, int], tmp_path: Path
) -> None:
    daemon, _ = tcp_daemon
    assert stat.S_ISSOCK(daemon.socket.stat().st_mode)
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o660

    oversized = b"recipe: {name: x}\n" + b"#" * 20_000
    assert daemon.request("POST", "/runs", oversized)[0] == 413
    assert daemon.request("POST", "/runs", b"\xff\xfe\x00 not utf-8")[0] == 400
    assert daemon.request("POST", "/runs", b"")[0] == 400
    status, body = daemon.request("POST", "/runs", b"{{{: [")
    assert status == 422
    assert body["problems"]
    assert daemon.request("POST", "/queue", b"{not json")[0] == 400
    assert daemon.request("POST", "/queue", b'{"order": [1, 2]}')[0] == 400
    assert daemon.request("GET", "/runs/no-such-run")[0] == 404
    assert daemon.request("POST", "/runs/no-such-run/pause")[0] == 409
    assert daemon.request("GET", "/no/such/endpoint")[0] == 404
    assert daemon.request("DELETE", "/status")[0] == 405

    # Not HTTP at all, and a request line far beyond any limit: the daemon answers 400.
    for garbage in (b"\x00\x01\x02 hello\r\n\r\n", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
            raw.settimeout(WAIT)
            raw.connect(str(daemon.socket))
            raw.sendall(garbage)
            reply = raw.recv(4096)
        assert reply.split()[1].startswith(b"4"), reply[:80]
    # A client that connects and vanishes mid-request.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.connect(str(daemon.socket))
        raw.sendall(b"POST /runs HTTP/1.1\r\nContent-Length: 5000\r\n\r\nrecipe:")

    # Still serving, and still doing its work.
    run_id = submit(daemon.config, write_recipe(tmp_path, temperatures="[200]"))
    assert daemon.wait_status(run_id, "completed")["points_done"] == 1
    assert daemon.alive()


def test_tcp_without_its_token_in_the_environment_refuses_to_start(tmp_path: Path) -> None:
    extra = f"control:\n  tcp: {{port: {free_port()}, token_env: MDFD_UNSET_TOKEN}}\n"
    daemon = Daemon(write_config(tmp_path, extra=extra), env=environment())
    try:
        daemon.start(wait=False)
        assert daemon.wait_exit() == 2
        assert "environment variable MDFD_UNSET_TOKEN is unset or empty" in daemon.log_text()
    finally:
        daemon.stop()
