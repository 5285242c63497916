"""The control API's listeners: the UNIX socket always, TCP with a bearer token when configured.

Access to the UNIX socket is access to the MDF, so it is mode 0660 in the runtime directory and
its group decides who operates. A stale socket file from a killed daemon is replaced: the
caller holds the runtime directory's lock (see `lock.RuntimeLock`), so no live daemon can own
it — not even one of another MDF configured with the same runtime_dir.

The TCP listener faces clients nobody vouched for. It holds at most `max_connections` at once
(the next is answered 503 and closed at once, so file descriptors stay for instruments, HDF5,
SQLite and the UNIX socket); a connection that sends no complete request within `idle_timeout`
is closed; a request without the token is answered 401 from its headers and its connection
closed. What the flood does is logged a few lines a minute, not once per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from typing import TYPE_CHECKING

from aiohttp import web

from mdfd.daemons.core.config import ControlTcp
from mdfd.daemons.core.logging import Throttle, get_logger
from mdfd.recipes.located import InputError, Problem

from .api import build_app

if TYPE_CHECKING:
    from .daemon import Daemon

SOCKET_MODE = 0o660
SHUTDOWN_TIMEOUT = 5.0
MAX_UNIX_PATH = 107  # sun_path is 108 bytes including the terminating NUL
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: 42\r\n\r\n"
    b'{"error": "too many control connections"}\n'
)


class ControlServer:
    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._runners: list[web.AppRunner] = []
        self._tcp_server: asyncio.Server | None = None
        control = daemon.config.model.control
        self.socket_path = daemon.config.model.storage.control_socket
        self._token: str | None = None
        if control.tcp is not None:
            self._token = os.environ.get(control.tcp.token_env) or None
            if self._token is None:
                raise InputError(
                    [
                        Problem(
                            str(daemon.config.path),
                            None,
                            "control.tcp.token_env",
                            f"TCP control needs a token: environment variable "
                            f"{control.tcp.token_env} is unset or empty",
                        )
                    ]
                )
        if len(os.fsencode(self.socket_path.absolute())) > MAX_UNIX_PATH:
            raise InputError(
                [
                    Problem(
                        str(daemon.config.path),
                        None,
                        "storage.runtime_dir",
                        f"control socket path {self.socket_path} is longer than a UNIX socket "
                        "path may be (107 bytes); choose a shorter runtime_dir",
                    )
                ]
            )

    async def __aenter__(self) -> ControlServer:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _start(self) -> None:
        log = get_logger(component="control")
        path = self.socket_path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()
        # The TCP listener first: the UNIX socket appearing means every listener is up (a
        # taken TCP port stops the daemon before anyone could take it for a serving one).
        tcp = self._daemon.config.model.control.tcp
        if tcp is not None:
            await self._start_tcp(tcp)
            log.info(
                "control API listening",
                host=tcp.host,
                port=tcp.port,
                auth="bearer token",
                max_connections=tcp.max_connections,
                idle_timeout_s=tcp.idle_timeout,
            )
        runner = web.AppRunner(
            build_app(self._daemon), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        self._runners.append(runner)
        await web.UnixSite(runner, str(path)).start()
        os.chmod(path, SOCKET_MODE)
        log.info("control API listening", socket=str(path))

    async def _start_tcp(self, tcp: ControlTcp) -> None:
        # aiohttp's keep-alive timer runs from the moment a connection is made and after each
        # response, and closes a connection still waiting for a complete request: that is
        # both the idle and the header timeout.
        runner = web.AppRunner(
            build_app(self._daemon, token=self._token),
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            keepalive_timeout=tcp.idle_timeout,
        )
        await runner.setup()
        self._runners.append(runner)
        assert runner.server is not None  # set by setup()
        gate = _Gate(tcp.max_connections, runner.server)
        loop = asyncio.get_running_loop()
        self._tcp_server = await loop.create_server(
            gate.protocol, tcp.host, tcp.port, reuse_address=True
        )

    async def __aexit__(self, *exc: object) -> None:
        if self._tcp_server is not None:
            self._tcp_server.close()
            self._tcp_server = None
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


class _Gate:
    """Counts open TCP connections; beyond the cap a connection gets a canned 503 and is
    closed before any HTTP parsing, so a flood costs one accept and one write each."""

    def __init__(self, limit: int, serve: web.Server) -> None:
        self.limit = limit
        self.serve = serve  # aiohttp's protocol factory
        self.open = 0
        self._log = get_logger(component="control")
        self._throttle = Throttle()

    def protocol(self) -> asyncio.BaseProtocol:
        if self.open >= self.limit:
            dropped = self._throttle.allow("cap")
            if dropped is not None:
                self._log.warning(
                    "control connection refused: too many open",
                    limit=self.limit,
                    suppressed=dropped,
                )
            return _Refuse()
        self.open += 1
        return _Counted(self.serve(), self)


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(REFUSAL)
        transport.close()


class _Counted(asyncio.Protocol):
    """aiohttp's request handler, with the gate told when its connection ends."""

    def __init__(self, inner: asyncio.Protocol, gate: _Gate) -> None:
        self._inner = inner
        self._gate = gate

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gate.open -= 1
        self._inner.connection_lost(exc)
