"""`mdfctl outbox`: a daemon's dead letters seen and re-queued through the control API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp import web

from tests.support import edit_config

from .harness import Daemon, environment, mdfctl, submit, write_config, write_recipe


class Platform:
    """A real HTTP receiver that rejects records until told to accept them."""

    def __init__(self) -> None:
        self.accept = False
        self.received: list[str] = []

    async def ingest(self, request: web.Request) -> web.Response:
        records = (await request.json())["records"]
        if not self.accept:
            return web.json_response({"error": "unknown site"}, status=422)
        self.received.extend(r["id"] for r in records)
        return web.json_response({"accepted": len(records)})


async def ctl(*args: str) -> dict:
    done = await asyncio.to_thread(mdfctl, *args, env=environment())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_dead_letters_shown_and_requeued_through_mdfctl(tmp_path: Path) -> None:
    platform = Platform()
    app = web.Application()
    app.router.add_post("/records", platform.ingest)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]  # the kernel's pick: no other process can have it
    config = write_config(tmp_path)
    publisher = {"type": "http", "name": "platform", "url": f"http://127.0.0.1:{port}/records"}
    edit_config(config, lambda m: m["upstream"]["publishers"].insert(0, publisher))
    daemon = Daemon(config, env=environment())
    try:
        await asyncio.to_thread(daemon.start)
        run_id = await asyncio.to_thread(submit, config, write_recipe(tmp_path))
        await asyncio.to_thread(daemon.wait_status, run_id, "completed")

        async def report_until(predicate) -> dict:
            for _ in range(300):
                report = await ctl("--config", str(config), "outbox", "--json")
                if predicate(report):
                    return report
                await asyncio.sleep(0.1)
            raise AssertionError(f"outbox never reached the expected state: {report}")

        def dead_for_platform(report: dict) -> int:
            return next(p["dead_letters"] for p in report["publishers"] if p["name"] == "platform")

        report = await report_until(lambda r: dead_for_platform(r) == 3)
        assert {d["publisher"] for d in report["dead_letters"]} == {"platform"}
        assert all("422" in d["reason"] for d in report["dead_letters"])
        spool = next(p for p in report["publishers"] if p["name"] == "spool")
        assert (spool["pending"], spool["delivered"]) == (0, 3)

        platform.accept = True
        retried = await ctl("--config", str(config), "outbox", "retry", "--json")
        assert retried["requeued"] == 3
        await report_until(lambda r: dead_for_platform(r) == 0 and len(platform.received) == 3)
        assert len(set(platform.received)) == 3
    finally:
        await asyncio.to_thread(daemon.stop)
        await runner.cleanup()
