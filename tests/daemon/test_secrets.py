"""Secrets put in an HTTP publisher's URL through `${…}` never leave the process: not in logs,
`mdfctl status`/`outbox`, `mdfd outbox`, the state DB, the spool or the data files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import yaml
from aiohttp import web

from tests.support import edit_config, mdfd, refused_port

from .harness import Daemon, environment, mdfctl, submit, wait_until, write_config, write_recipe

URL = "http://ingest:${{UP_PASSWORD}}@127.0.0.1:{port}/records?site=KR&api_key=${{UP_KEY}}"

API_KEY = "k3y-7Qz9-never-shown"
PASSWORD = "pw-Xy81-never-shown"
HEADER_KEY = "hdr-5Kp2-never-shown"
SECRETS = (API_KEY, PASSWORD, HEADER_KEY)


class Platform:
    """Answers 503 twice (retried: last_error), then 422 (dead letters: their reason)."""

    def __init__(self) -> None:
        self.requests = 0
        self.api_keys: set[str] = set()
        self.header_keys: set[str] = set()

    async def ingest(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.api_keys.add(request.query.get("api_key", ""))
        self.header_keys.add(request.headers.get("X-Api-Key", ""))
        if self.requests <= 2:
            return web.Response(status=503, text="maintenance")
        return web.json_response({"error": "unknown site"}, status=422)


def _files_holding_a_secret(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found.extend(f"{path}: {s}" for s in SECRETS if s.encode() in data)
    return found


async def test_secrets_in_the_publisher_url_appear_in_no_output_log_or_file(
    tmp_path: Path,
) -> None:
    platform = Platform()
    app = web.Application()
    app.router.add_post("/records", platform.ingest)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]  # the kernel's pick: no other process can have it
    config = write_config(tmp_path)
    url = URL.format(port=port)
    publisher = (
        f"{{type: http, name: platform, url: '{url}', retry_initial: 0.05, retry_max: 0.1,"
        " headers_env: {X-Api-Key: UP_HEADER_KEY}}"
    )
    edit_config(config, lambda m: m["upstream"]["publishers"].insert(0, yaml.safe_load(publisher)))
    env = environment(UP_KEY=API_KEY, UP_PASSWORD=PASSWORD, UP_HEADER_KEY=HEADER_KEY)
    outputs: list[str] = []
    daemon = Daemon(config, env=env)
    try:
        await asyncio.to_thread(daemon.start)
        run_id = await asyncio.to_thread(submit, config, write_recipe(tmp_path), env)
        await asyncio.to_thread(daemon.wait_status, run_id, "completed")

        def all_dead() -> bool:
            done = mdfctl("--config", str(config), "outbox", "--json", env=env)
            outputs.append(done.stdout + done.stderr)
            report = json.loads(done.stdout)
            platform_report = next(p for p in report["publishers"] if p["name"] == "platform")
            return platform_report["dead_letters"] == 3

        await asyncio.to_thread(wait_until, all_dead, "three dead letters", daemon)
        for args in (("status",), ("status", "--json"), ("outbox",), ("runs", "--json")):
            done = await asyncio.to_thread(mdfctl, "--config", str(config), *args, env=env)
            assert done.returncode == 0, done.stderr
            outputs.append(done.stdout + done.stderr)
        for path in ("/status", "/outbox", f"/runs/{run_id}"):
            outputs.append(json.dumps(await asyncio.to_thread(daemon.get, path)))
    finally:
        await asyncio.to_thread(daemon.stop)
        await runner.cleanup()
    for args in (("outbox",), ("outbox", "--json")):
        done = await asyncio.to_thread(mdfd, *args, "--config", str(config), env=env)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout + done.stderr)

    # The secrets did reach the platform, and the shown URL still says where records go.
    assert platform.api_keys == {API_KEY}
    assert platform.header_keys == {HEADER_KEY}
    report = "\n".join(outputs)
    assert f"http://ingest:***@127.0.0.1:{port}/records?site=***&api_key=***" in report
    assert "HTTP 503" in report
    assert "HTTP 422" in report
    for secret in SECRETS:
        assert secret not in report
    assert _files_holding_a_secret(tmp_path) == []


def test_an_unreachable_platform_under_mdfd_run_shows_no_secret(tmp_path: Path) -> None:
    with refused_port() as port:  # nothing listens: every attempt is a connection error
        config = write_config(tmp_path)
        publisher = (
            f"{{type: http, name: platform, url: '{URL.format(port=port)}', retry_initial: 0.05,"
            " retry_max: 0.1, headers_env: {X-Api-Key: UP_HEADER_KEY}}"
        )

        def unreachable_first(model: dict) -> None:
            model["upstream"]["publishers"].insert(0, yaml.safe_load(publisher))
            model["upstream"]["exit_drain_timeout"] = 1

        edit_config(config, unreachable_first)
        env = environment(UP_KEY=API_KEY, UP_PASSWORD=PASSWORD, UP_HEADER_KEY=HEADER_KEY)
        run = mdfd("run", str(write_recipe(tmp_path)), "--config", str(config), "--json", env=env)
        assert run.returncode == 0, run.stderr
        outbox = mdfd("outbox", "--config", str(config), "--json", env=env)
        assert outbox.returncode == 0, outbox.stderr
        publishers = json.loads(outbox.stdout)["publishers"]
        platform = next(p for p in publishers if p["name"] == "platform")
        assert platform["pending"] == 3
        assert (
            f"POST http://ingest:***@127.0.0.1:{port}/records?site=***&api_key=***"
            in (platform["last_error"])
        )
        report = run.stdout + run.stderr + outbox.stdout + outbox.stderr
        for secret in SECRETS:
            assert secret not in report
        assert _files_holding_a_secret(tmp_path) == []
