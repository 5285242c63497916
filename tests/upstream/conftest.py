"""Real parts for upstream tests: an aiohttp receiver in this process, a Mosquitto broker as a
child process, and a memory-driver MDF whose points are checkpointed through the real StateDB
with the real record hook."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import subprocess
import textwrap
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiomqtt
import pytest
import yaml
from aiohttp import web

from mdfd.daemons.core.config import LoadedConfig, load_config
from mdfd.daemons.core.stats import PointStats, Stats
from mdfd.daemons.engine.results import PointResult, RunContext
from mdfd.daemons.store import PointRow, PointStatus, RunStatus, StateDB
from mdfd.daemons.upstream.record import record_id
from mdfd.daemons.upstream.service import UpstreamService
from mdfd.recipes.loader import LoadedRecipe, load_recipe
from tests.support import PORT_TAKEN, free_port, mdf_config, require_tool, wait_for_port

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
MDF_ID = "up-mdf"
SITE = "KR-TEST"

RECIPE = """
recipe: {{name: upstream-test, version: "2.1"}}
materials:
  raw_materials:
    - {{code: RM_ALLOY_GRADE, value: C11000}}
    - {{code: RM_WIRE_DIAMETER, value: 1000, unit: um}}
  composition:
    - {{code: CMP_CU, value: 99.92, unit: percent}}
sweep:
  parameters:
    temperature: {{unit: degC, values: {temperatures}}}
    time: {{unit: h, values: [0.5]}}
steps:
  - set: {{meter.specimen: 1}}
  - ramp: {{channel: furnace.setpoint, to: temperature, rate: 50 degC/min, increment: 10}}
  - wait_until_stable:
      {{channel: furnace.temperature, target: temperature, tolerance: 1, hold: 30 s,
       timeout: 1 h}}
  - acquire: {{channels: [meter.resistivity, furnace.temperature], rate: 2, count: 5}}
record:
  process:
    - {{code: PRC_ANNEAL_TEMP, from: temperature}}
    - {{code: PRC_ANNEAL_TIME, from: time}}
    - {{code: PRC_FURNACE_TEMP_MEAN, from: furnace.temperature}}
  properties:
    - {{code: PRP_ELECTRICAL_RESISTIVITY, from: meter.resistivity, stat: mean}}
"""


def write_config(root: Path, publishers: list[str]) -> Path:
    """The memory MDF with `publishers` (each a YAML flow mapping) and a 20 s exit drain."""
    return mdf_config(
        root,
        mdf={"id": MDF_ID, "domain": "metal", "site": SITE},
        upstream={
            "exit_drain_timeout": 20,
            "publishers": [yaml.safe_load(publisher) for publisher in publishers],
        },
    )


def write_recipe(root: Path, temperatures: str = "[200, 250]") -> Path:
    path = root / "recipe.yaml"
    path.write_text(textwrap.dedent(RECIPE.format(temperatures=temperatures)))
    return path


def http_publisher(port: int, **extra: object) -> str:
    fields = {
        "type": "http",
        "name": "platform",
        "url": f"http://127.0.0.1:{port}/records",
        "batch_size": 25,
        "retry_initial": 0.05,
        "retry_max": 0.2,
        "timeout": 5,
        **extra,
    }
    return json.dumps(fields)


def mqtt_publisher(port: int, **extra: object) -> str:
    fields = {
        "type": "mqtt",
        "name": "fleet",
        "host": "127.0.0.1",
        "port": port,
        "prefix": "mdf",
        "batch_size": 20,
        "retry_initial": 0.05,
        "retry_max": 0.3,
        "timeout": 5,
        "keepalive": 5,
        **extra,
    }
    return json.dumps(fields)


def expected_ids(run_id: str, count: int) -> set[str]:
    return {str(record_id(MDF_ID, run_id, i)) for i in range(count)}


async def until(predicate: Callable[[], bool], within: float = 30.0, what: str = "") -> None:
    """Poll a condition owned by another party (a receiver, a subscriber, a drain)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - nothing to wait on but the observed state
            await asyncio.sleep(0.02)
    assert predicate(), what


class Points:
    """Checkpoints synthetic completed points through StateDB.complete_point with the service's
    record hook — the exact path the engine takes, without instruments."""

    def __init__(self, config: LoadedConfig, recipe: LoadedRecipe, state: StateDB) -> None:
        self.config = config
        self.recipe = recipe
        self.state = state
        self.run_id = ""
        self.context: RunContext | None = None

    async def create_run(self, run_id: str = "run-1") -> str:
        await self.state.create_run(
            run_id=run_id,
            recipe_name=self.recipe.model.recipe.name,
            recipe_version=self.recipe.model.recipe.version,
            recipe_sha256=self.recipe.sha256,
            recipe_text=self.recipe.text,
            recipe_path=self.recipe.path,
            config_text=self.config.text,
            points_total=10_000,
            status=RunStatus.RUNNING,
            data_file=str(self.config.model.storage.data_dir / f"{run_id}.h5"),
        )
        self.run_id = run_id
        self.context = RunContext(
            run_id,
            self.recipe,
            self.config,
            {"furnace": "mdfd,memory,0,1.0", "meter": "mdfd,memory,0,1.0"},
            str(self.config.model.storage.data_dir / f"{run_id}.h5"),
            {"meter.resistivity": "/entry/instrument/meter/resistivity"},
        )
        return run_id

    def result(self, index: int) -> PointResult:
        assert self.context is not None
        started = 1_800_000_000.0 + index * 60
        stats = PointStats.of(
            {
                "meter.resistivity": Stats(1.7 + index * 1e-3, 0.01, 1.69, 1.72, 5, 1.7),
                "furnace.temperature": Stats(200.0 + index, 0.5, 199.0, 201.0, 5, 200.0),
            }
        )
        parameters = {"temperature": 200.0 + index, "time": 0.5}
        return PointResult(
            self.context, index, parameters, stats, started, started + 30, PointStatus.COMPLETED
        )

    async def complete(self, index: int, hook: Callable[[PointResult], object]) -> None:
        result = self.result(index)
        row = PointRow(
            self.run_id,
            index,
            PointStatus.COMPLETED,
            result.parameters,
            result.started_at,
            result.ended_at,
            {},
            result.stats,
            "",
        )
        await self.state.complete_point(row, extra=hook(result))  # type: ignore[arg-type]


MakeMdf = Callable[..., Awaitable[tuple[UpstreamService, Points]]]


@pytest.fixture
async def mdf(tmp_path: Path) -> AsyncIterator[MakeMdf]:
    """Open state + service for given publishers; everything is closed at teardown."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(*publishers: str) -> tuple[UpstreamService, Points]:
            config = load_config(write_config(tmp_path, list(publishers)))
            recipe = load_recipe(write_recipe(tmp_path))
            state = await stack.enter_async_context(
                StateDB(config.model.storage.state_dir / "state.sqlite3")
            )
            service = await stack.enter_async_context(
                UpstreamService(config, state, poll_interval=0.2)
            )
            points = Points(config, recipe, state)
            await points.create_run()
            return service, points

        yield make


# -- HTTP receiver ---------------------------------------------------------------------------


class Receiver:
    """The platform's ingest endpoint, in this process: counts every record id it accepts.

    With port 0 (the default) the port is bound at once, from the kernel, but not listened
    on until `start`: a config can name it before the receiver runs (publishers meanwhile
    get "connection refused"), and no other process can take it (free_port's race). A
    restart comes back to the same port."""

    def __init__(
        self, port: int = 0, token: str | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.port = port
        self.token = token
        self.tls = tls
        self.ids: Counter[str] = Counter()
        self.keys: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.script: deque[int] = deque()
        self.reject: set[str] = set()
        self._runner: web.AppRunner | None = None
        self._socket: socket.socket | None = None
        if port == 0:
            self._socket = socket.socket()
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind(("127.0.0.1", 0))
            self.port = self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/records"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/records", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site: web.BaseSite
        if self._socket is not None:  # the first start: listen on the socket bound for us
            site = web.SockSite(self._runner, self._socket, ssl_context=self.tls)
            self._socket = None  # the server owns it now and closes it on cleanup
        else:
            site = web.TCPSite(
                self._runner, "127.0.0.1", self.port, reuse_address=True, ssl_context=self.tls
            )
        await site.start()

    async def stop(self) -> None:
        if self._socket is not None:  # never started
            self._socket.close()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        status = self._status(request)
        if status != 200:
            self.statuses[status] += 1
            return web.Response(status=status, text=f"refused with {status}")
        body = await request.json()
        assert body["schema"] == "mdfd.record/1"
        ids = [record["id"] for record in body["records"]]
        if self.reject & set(ids):
            self.statuses[422] += 1
            return web.Response(status=422, text="record fails platform validation")
        self.keys.append(request.headers["Idempotency-Key"])
        self.ids.update(ids)
        self.statuses[200] += 1
        return web.json_response({"accepted": len(ids)})

    def _status(self, request: web.Request) -> int:
        if self.token is not None and request.headers.get("Authorization") != (
            f"Bearer {self.token}"
        ):
            return 401
        if self.script:
            return self.script.popleft()
        return 200


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


# -- TLS -----------------------------------------------------------------------------------------


class Pki:
    """A throwaway CA and a server certificate for 127.0.0.1, made by the openssl CLI."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.ca, self.cert, self.key = root / "ca.pem", root / "server.pem", root / "server.key"
        ca_key, csr, ext = root / "ca.key", root / "server.csr", root / "san.cnf"
        ext.write_text("subjectAltName=IP:127.0.0.1\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for command in (
            [
                "req",
                "-x509",
                *ec,
                "-keyout",
                ca_key,
                "-out",
                self.ca,
                "-days",
                "1",
                "-subj",
                "/CN=mdfd test CA",
            ],
            ["req", *ec, "-keyout", self.key, "-out", csr, "-subj", "/CN=127.0.0.1"],
            [
                "x509",
                "-req",
                "-in",
                csr,
                "-CA",
                self.ca,
                "-CAkey",
                ca_key,
                "-CAcreateserial",
                "-out",
                self.cert,
                "-days",
                "1",
                "-extfile",
                ext,
            ],
        ):
            subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


# -- Mosquitto -----------------------------------------------------------------------------------


class Mosquitto:
    """A real broker on a loopback port, with persistence so a restart keeps sessions."""

    def __init__(
        self, root: Path, users: dict[str, str] | None = None, pki: Pki | None = None
    ) -> None:
        require_tool(MOSQUITTO, "mosquitto")
        self.port = free_port()
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.conf = root / "mosquitto.conf"
        access = "allow_anonymous true\n"
        if users:
            passwords = root / "passwords"
            for name, password in users.items():
                subprocess.run(
                    [
                        MOSQUITTO_PASSWD,
                        "-b",
                        *(["-c"] if not passwords.exists() else []),
                        str(passwords),
                        name,
                        password,
                    ],
                    check=True,
                    capture_output=True,
                )
            access = f"allow_anonymous false\npassword_file {passwords}\n"
        tls = f"cafile {pki.ca}\ncertfile {pki.cert}\nkeyfile {pki.key}\n" if pki else ""
        self._settings = f"{tls}{access}persistence true\npersistence_location {root}/\nuser root\n"
        self._write_conf()
        self.log = root / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._started = 0

    def _write_conf(self) -> None:
        self.conf.write_text(f"listener {self.port} 127.0.0.1\n{self._settings}")

    def start(self) -> None:
        """Start the broker and wait (an upper bound) until it says it runs.

        Its port is fixed in its config (a restart must come back there), so it comes from
        `free_port` with that race: if another process took the port before the first start,
        the broker exits "Address already in use" and starts once more on a fresh port.
        Waiting for its own "running" line, not for the port, never mistakes the other
        process's listener for the broker."""
        if not self._run() and self._started == 0 and PORT_TAKEN in self._log_text().lower():
            self.port = free_port()
            self._write_conf()
            self._run()
        assert self.process is not None
        assert self.process.poll() is None, self._log_text()[-2000:]
        self._started += 1

    def _run(self) -> bool:
        """One start; whether the broker runs (False: it exited)."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 15
        while self._log_text().count(" running") <= self._started:
            if self.process.poll() is not None:
                return False
            assert time.monotonic() < deadline, "mosquitto did not start within 15 s"
            time.sleep(0.05)
        wait_for_port(self.port)
        return True

    def _log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        time.sleep(0.05)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


class Subscriber:
    """A persistent-session QoS 1 subscriber that reconnects whenever the broker comes back."""

    def __init__(self, port: int, topics: list[str]) -> None:
        self.port = port
        self.topics = topics
        self.messages: dict[str, list[bytes]] = {}
        self.ids: Counter[str] = Counter()
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscriber:
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(15):
            await self.subscribed.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier="test-subscriber", clean_session=False
                ) as client:
                    for topic in self.topics:
                        await client.subscribe(topic, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        payload = bytes(message.payload)  # type: ignore[arg-type]
                        self.messages.setdefault(str(message.topic), []).append(payload)
                        if str(message.topic).endswith("/records"):
                            self.ids[json.loads(payload)["id"]] += 1
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)
