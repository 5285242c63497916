"""The control API's listeners: the UNIX socket always, TCP with a bearer token when configured.

Access to the UNIX socket is access to the MDF, so it is mode 0660 in the runtime directory and
its group decides who operates. A stale socket file from a killed daemon is replaced: the
caller holds the runtime directory's lock (see `lock.RuntimeLock`), so no live daemon can own
it — not even one of another MDF configured with the same runtime_dir.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import TYPE_CHECKING

from aiohttp import web

from mdfd.recipes.located import InputError, Problem

from ..logging import get_logger
from .api import build_app

if TYPE_CHECKING:
    from .daemon import Daemon

SOCKET_MODE = 0o660
SHUTDOWN_TIMEOUT = 5.0
MAX_UNIX_PATH = 107  # sun_path is 108 bytes including the terminating NUL


class ControlServer:
    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._runners: list[web.AppRunner] = []
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
        runner = web.AppRunner(
            build_app(self._daemon), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        self._runners.append(runner)
        await web.UnixSite(runner, str(path)).start()
        os.chmod(path, SOCKET_MODE)
        log.info("control API listening", socket=str(path))
        tcp = self._daemon.config.model.control.tcp
        if tcp is not None:
            tcp_runner = web.AppRunner(
                build_app(self._daemon, token=self._token),
                access_log=None,
                shutdown_timeout=SHUTDOWN_TIMEOUT,
            )
            await tcp_runner.setup()
            self._runners.append(tcp_runner)
            await web.TCPSite(tcp_runner, tcp.host, tcp.port).start()
            log.info("control API listening", host=tcp.host, port=tcp.port, auth="bearer token")

    async def __aexit__(self, *exc: object) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
