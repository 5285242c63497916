"""Upstream outbox: durable enqueue, and draining to HTTP and MQTT, each next to its raw baseline.

Enqueue: points checkpointed through `StateDB.complete_point` with the record hook (build the
`mdfd.record/1` record, insert it in the checkpoint transaction, synchronous=FULL) against the
same checkpoints without records — the price of "if the point is complete, its record is queued".

HTTP: records already in the outbox drained by `UpstreamService` (batches of 100, cursor committed
per batch) to an aiohttp receiver in a child process, against the same aiohttp client POSTing the
same bodies in the same batches with no outbox. MQTT: the same against Mosquitto (QoS 1, 100
records in flight per batch, every PUBACK awaited) and raw aiomqtt publishing them the same way.
Project and baseline alternate in this process, in the same run, against the same receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import aiomqtt
from aiohttp import web

from bench.common import Figure, arguments, report
from mdfd.daemons.core.config import LoadedConfig, load_config
from mdfd.daemons.core.logging import configure
from mdfd.daemons.core.stats import PointStats, Stats
from mdfd.daemons.engine.results import PointResult, RunContext
from mdfd.daemons.store import PointRow, PointStatus, RunStatus, StateDB, outbox
from mdfd.daemons.store.outbox import Entry
from mdfd.daemons.upstream.publishers.http import idempotency_key
from mdfd.daemons.upstream.service import UpstreamService
from mdfd.recipes.loader import LoadedRecipe, load_recipe

REPO = Path(__file__).resolve().parent.parent
MOSQUITTO = "/usr/sbin/mosquitto"
BATCH = 100

CONFIG = """
mdf: {{id: bench-mdf, domain: metal, site: KR-BENCH}}
storage: {{data_dir: {root}/data, state_dir: {root}/state}}
vocabulary: {vocabulary}
instruments:
  furnace:
    driver: memory
    channels:
      temperature: {{unit: degC}}
      setpoint: {{unit: degC, writable: true}}
  meter:
    driver: memory
    channels:
      resistivity: {{unit: microohm*cm}}
upstream:
  publishers:
    - {{type: http, name: platform, url: "http://127.0.0.1:{http_port}/records",
       batch_size: {batch}}}
    - {{type: mqtt, name: fleet, host: 127.0.0.1, port: {mqtt_port}, batch_size: {batch},
       max_inflight: {batch}}}
"""

RECIPE = """
recipe: {name: bench, version: "1"}
materials:
  raw_materials: [{code: RM_ALLOY_GRADE, value: C11000}]
  composition: [{code: CMP_CU, value: 99.9, unit: percent}]
sweep:
  parameters: {temperature: {unit: degC, values: [200]}}
steps:
  - set: {furnace.setpoint: temperature}
  - acquire: {channels: [meter.resistivity, furnace.temperature], rate: 1, count: 2}
record:
  process:
    - {code: PRC_ANNEAL_TEMP, from: temperature}
    - {code: PRC_FURNACE_TEMP_MEAN, from: furnace.temperature}
  properties:
    - {code: PRP_ELECTRICAL_RESISTIVITY, from: meter.resistivity}
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Mdf:
    """A fresh state database and its recipe context for one measurement."""

    def __init__(self, root: Path, http_port: int, mqtt_port: int) -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "mdf.yaml").write_text(
            CONFIG.format(
                root=root / "var",
                vocabulary=REPO / "config" / "vocabulary.yaml",
                http_port=http_port,
                mqtt_port=mqtt_port,
                batch=BATCH,
            )
        )
        (root / "recipe.yaml").write_text(RECIPE)
        self.config: LoadedConfig = load_config(root / "mdf.yaml")
        self.recipe: LoadedRecipe = load_recipe(root / "recipe.yaml")
        self.state = StateDB(self.config.model.storage.state_dir / "state.sqlite3")
        self.context = RunContext(
            "bench-run",
            self.recipe,
            self.config,
            {"furnace": "mdfd,memory,0,1.0", "meter": "mdfd,memory,0,1.0"},
            "bench-run.h5",
            {"meter.resistivity": "/entry/instrument/meter/resistivity"},
        )

    async def open(self) -> None:
        await self.state.open()
        await self.state.create_run(
            run_id="bench-run",
            recipe_name="bench",
            recipe_version="1",
            recipe_sha256=self.recipe.sha256,
            recipe_text=self.recipe.text,
            recipe_path="recipe.yaml",
            config_text=self.config.text,
            points_total=1_000_000,
            status=RunStatus.RUNNING,
            data_file="bench-run.h5",
        )

    async def checkpoint(self, index: int, hook) -> None:
        stats = PointStats.of(
            {
                "meter.resistivity": Stats(1.7, 0.01, 1.69, 1.72, 2, 1.7),
                "furnace.temperature": Stats(200.0, 0.5, 199.0, 201.0, 2, 200.0),
            }
        )
        t = 1_800_000_000.0 + index
        result = PointResult(
            self.context, index, {"temperature": 200.0}, stats, t, t + 1, PointStatus.COMPLETED
        )
        row = PointRow("bench-run", index, PointStatus.COMPLETED, {}, t, t + 1, {}, stats, "")
        await self.state.complete_point(row, extra=hook(result) if hook else None)


async def enqueue_rate(root: Path, count: int, with_record: bool) -> float:
    mdf = Mdf(root, 1, 1)
    await mdf.open()
    try:
        service = UpstreamService(mdf.config, mdf.state)
        hook = service.record_hook if with_record else None
        began = time.perf_counter()
        for index in range(count):
            await mdf.checkpoint(index, hook)
        return count / (time.perf_counter() - began)
    finally:
        await mdf.state.close()


async def _filled(root: Path, count: int, http_port: int, mqtt_port: int) -> Mdf:
    mdf = Mdf(root, http_port, mqtt_port)
    await mdf.open()
    service = UpstreamService(mdf.config, mdf.state)
    for index in range(count):
        await mdf.checkpoint(index, service.record_hook)
    return mdf


async def drain_rate(root: Path, count: int, http_port: int, mqtt_port: int, only: str) -> float:
    """Records/s through the outbox to one publisher (the other one's cursor is parked)."""
    mdf = await _filled(root, count, http_port, mqtt_port)
    try:
        config = mdf.config
        publishers = [p for p in config.model.upstream.publishers if p.name == only]
        upstream = config.model.upstream.model_copy(update={"publishers": publishers})
        model = config.model.model_copy(update={"upstream": upstream})
        single = config.model_copy(update={"model": model})
        began = time.perf_counter()
        async with UpstreamService(single, mdf.state) as service:
            if not await service.drain_until_idle(300):
                raise RuntimeError(f"{only} did not drain")
        [depth] = await mdf.state.transaction(lambda c: outbox.depths(c, [only]))
        assert depth.delivered == count, depth
        return count / (time.perf_counter() - began)
    finally:
        await mdf.state.close()


async def _bodies(root: Path, count: int) -> list[Entry]:
    mdf = await _filled(root, count, 1, 1)
    try:
        return await mdf.state.read(lambda c: outbox.fetch(c, "", count, after=0))
    finally:
        await mdf.state.close()


async def raw_http_rate(bodies: list[Entry], port: int) -> float:
    """The same client, the same batches, the same headers — and no outbox."""
    url = f"http://127.0.0.1:{port}/records"
    began = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for start in range(0, len(bodies), BATCH):
            batch = bodies[start : start + BATCH]
            body = '{"schema":"mdfd.record/1","records":[' + ",".join(e.body for e in batch) + "]}"
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": idempotency_key(batch),
            }
            async with session.post(url, data=body.encode(), headers=headers) as response:
                await response.read()
                response.raise_for_status()
    return len(bodies) / (time.perf_counter() - began)


async def raw_mqtt_rate(bodies: list[Entry], port: int) -> float:
    began = time.perf_counter()
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier="bench-raw",
        clean_session=False,
        max_inflight_messages=BATCH,
    ) as client:
        client.pending_calls_threshold = BATCH + 2
        for start in range(0, len(bodies), BATCH):
            async with asyncio.TaskGroup() as group:
                for entry in bodies[start : start + BATCH]:
                    group.create_task(
                        client.publish("mdf/KR-BENCH/bench-mdf/records", entry.body.encode(), qos=1)
                    )
    return len(bodies) / (time.perf_counter() - began)


# -- the receiver and the broker, as child processes ----------------------------------------


def serve_receiver(port: int) -> None:
    received = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal received
        body = await request.json()
        received += len(body["records"])
        return web.json_response({"accepted": len(body["records"])})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/records", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


class Children:
    def __init__(self, root: Path) -> None:
        self.http_port = free_port()
        self.mqtt_port = free_port()
        conf = root / "mosquitto.conf"
        conf.write_text(
            f"listener {self.mqtt_port} 127.0.0.1\nallow_anonymous true\n"
            "persistence false\nuser root\n"
        )
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.upstream", "--receiver", str(self.http_port)],
                cwd=REPO,
            ),
            subprocess.Popen(
                [MOSQUITTO, "-c", str(conf)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        ]
        wait_for_port(self.http_port)
        wait_for_port(self.mqtt_port)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


async def measure(quick: bool) -> list[Figure]:
    count = 500 if quick else 3000
    enqueue_count = 200 if quick else 1000
    times = 3 if quick else 5
    with tempfile.TemporaryDirectory(prefix="mdfd-bench-upstream-") as tmp:
        root = Path(tmp)
        children = Children(root)
        try:
            enqueue, bare = [], []
            http, raw_http, mqtt, raw_mqtt = [], [], [], []
            bodies = await _bodies(root / "bodies", count)
            for i in range(times):
                enqueue.append(await enqueue_rate(root / f"e{i}", enqueue_count, True))
                bare.append(await enqueue_rate(root / f"b{i}", enqueue_count, False))
                ports = (children.http_port, children.mqtt_port)
                http.append(await drain_rate(root / f"h{i}", count, *ports, only="platform"))
                raw_http.append(await raw_http_rate(bodies, children.http_port))
                mqtt.append(await drain_rate(root / f"m{i}", count, *ports, only="fleet"))
                raw_mqtt.append(await raw_mqtt_rate(bodies, children.mqtt_port))
        finally:
            children.stop()
    fsync = "synchronous=FULL, one transaction per point"
    return [
        Figure(
            "checkpoint + record enqueued",
            "points/s",
            enqueue,
            "checkpoint without record",
            bare,
            note=f"build mdfd.record/1 + insert in the point's transaction; {fsync}",
        ),
        Figure(
            "outbox -> HTTP",
            "records/s",
            http,
            "raw aiohttp POST, same batches",
            raw_http,
            note=f"{count} records, batches of {BATCH}, cursor committed per batch",
        ),
        Figure(
            "outbox -> MQTT QoS 1",
            "records/s",
            mqtt,
            "raw aiomqtt publish, same batches",
            raw_mqtt,
            note=f"{count} records to Mosquitto, {BATCH} in flight, every PUBACK awaited",
        ),
    ]


def run(quick: bool = False) -> list[Figure]:
    configure("warning")
    return asyncio.run(measure(quick))


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        serve_receiver(args.receiver)
        return
    report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    main()
