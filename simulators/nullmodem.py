"""A null-modem cable made of two pty pairs, so a serial simulator needs no hardware and no socat.

Each side gets the slave end of its own pty; the masters are joined back to back on the event
loop. The server opens `server_path` with an ordinary serial library, the client opens
`client_path` (or the stable `link` symlink to it) — both see a real tty with real termios.
Holding the slave ends open ourselves keeps the line up while the client reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from pathlib import Path


class _Pair:
    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class NullModem:
    def __init__(self, link: Path | None = None) -> None:
        self.link = link
        self._server: _Pair | None = None
        self._client: _Pair | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def server_path(self) -> str:
        assert self._server is not None, "null modem not open"
        return self._server.path

    @property
    def client_path(self) -> str:
        assert self._client is not None, "null modem not open"
        return self._client.path

    def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server, self._client = _Pair(), _Pair()
        self._loop.add_reader(self._server.master, self._pump, self._server, self._client)
        self._loop.add_reader(self._client.master, self._pump, self._client, self._server)
        if self.link is not None:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self._client.path)
            tmp.replace(self.link)

    def close(self) -> None:
        if self._server is None or self._client is None or self._loop is None:
            return
        for pair in (self._server, self._client):
            self._loop.remove_reader(pair.master)
            pair.close()
        if self.link is not None and self.link.is_symlink():
            with contextlib.suppress(OSError):
                if os.readlink(self.link) == self._client.path:
                    self.link.unlink()
        self._server = self._client = None

    @staticmethod
    def _pump(source: _Pair, sink: _Pair) -> None:
        try:
            data = os.read(source.master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(sink.master, data)
