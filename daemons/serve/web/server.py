"""The operator page's listener: its own TCP site, TLS when configured, its URL announced.

Entered by the daemon after the control API (it serves the same complete daemon) and left
before it. A port that is taken, a TLS file that cannot be read or a token variable that is
unset stop the start-up with a located error (exit 2), before any instrument is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
from pathlib import Path

from aiohttp import web

from mdfd.daemons.core.logging import get_logger
from mdfd.daemons.core.webconfig import Web, WebTls, is_loopback
from mdfd.daemons.serve.controlplane import ControlPlane
from mdfd.recipes.located import InputError, Problem

from .access import Access
from .app import build_web_app
from .tracker import Tracker

SHUTDOWN_TIMEOUT = 5.0
IDLE_SECONDS = 75.0


class WebServer:
    def __init__(self, plane: ControlPlane, web_config: Web, config_path: Path) -> None:
        self._plane = plane
        self._web = web_config
        self._path = str(config_path)
        self._access = Access.from_env(web_config, self._path)
        self._tracker = Tracker()
        self._runner: web.AppRunner | None = None
        self._follow: asyncio.Task[None] | None = None
        self.url = ""

    async def __aenter__(self) -> WebServer:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _start(self) -> None:
        cfg = self._web
        context = None if cfg.tls is None else await asyncio.to_thread(self._tls, cfg.tls)
        self._follow = asyncio.create_task(self._tracker.follow(self._plane), name="web-tracker")
        runner = web.AppRunner(
            build_web_app(self._plane, self._access, self._tracker),
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            keepalive_timeout=IDLE_SECONDS,
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, cfg.host, cfg.port, ssl_context=context, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise InputError(
                [
                    Problem(
                        self._path,
                        None,
                        "web.port",
                        f"cannot listen on {cfg.host}:{cfg.port}: {exc}",
                    )
                ]
            ) from exc
        port = runner.addresses[0][1]
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        self.url = f"{cfg.scheme}://{host}:{port}/"
        log = get_logger(component="web")
        if not is_loopback(cfg.host) and cfg.tls is None:
            log.warning("operator page served without TLS (web.insecure_http)", host=cfg.host)
        log.info(
            "operator page ready",
            url=self.url,
            login="token" if self._access.login_required else "none (loopback)",
            roles=sorted(self._access.tokens) or ["operator"],
        )
        print(f"operator page: {self.url}", file=sys.stdout, flush=True)

    def _tls(self, tls: WebTls) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(tls.cert, tls.key)
        except (OSError, ssl.SSLError) as exc:
            raise InputError(
                [Problem(self._path, None, "web.tls", f"cannot load {tls.cert} / {tls.key}: {exc}")]
            ) from exc
        return context

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow
            self._follow = None
