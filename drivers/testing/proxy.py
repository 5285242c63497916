"""A TCP proxy the conformance kit puts between a driver and its peer, to misbehave on cue.

Faults are injected on the wire rather than inside the peer, so the same kit checks any driver
that speaks TCP to anything — a simulator, a vendor's server, a real instrument — without the
peer knowing: `cut` makes the peer vanish (every connection closed, new ones closed on accept),
`drop_replies` lets requests through and loses the answers (a write whose outcome is unknown),
`stall` holds both directions (a peer that stops answering). `bytes_to_peer` counts what the
driver actually sent, which is how "refused before the wire" is proven; `connections` and
`messages_to_peer` count how often the driver connected and sent, which is how "one attempt per
call" is proven (a driver waits for each answer, so each request arrives as one message).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from types import TracebackType

CHUNK = 65536


class Mode(enum.Enum):
    PASS = "pass"
    CUT = "cut"
    DROP_REPLIES = "drop_replies"
    STALL = "stall"


class WireProxy:
    """Listens on 127.0.0.1 (ephemeral port) and forwards to `host:port`.

    Use as `async with WireProxy(host, port) as proxy:`; point the driver at `proxy.port`.
    Every connection's pump tasks are owned here and cancelled on exit.
    """

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._mode = Mode.PASS
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._resume = asyncio.Event()
        self._resume.set()
        self.bytes_to_peer = 0
        self.messages_to_peer = 0
        self.connections = 0
        self.port = 0

    async def __aenter__(self) -> WireProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        self._close_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.wait_for(self._server.wait_closed(), 5)

    @property
    def mode(self) -> Mode:
        return self._mode

    def cut(self) -> None:
        """The peer vanishes: open connections are closed and new ones closed at once."""
        self._set(Mode.CUT)
        self._close_all()

    def drop_replies(self) -> None:
        """Requests reach the peer; its answers are lost."""
        self._set(Mode.DROP_REPLIES)

    def stall(self) -> None:
        """Nothing moves in either direction until `restore`."""
        self._set(Mode.STALL)

    def restore(self) -> None:
        """Back to a faithful wire (connections cut earlier stay closed: the driver reconnects)."""
        self._set(Mode.PASS)

    def _set(self, mode: Mode) -> None:
        self._mode = mode
        if mode is Mode.STALL:
            self._resume.clear()
        else:
            self._resume.set()

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self._mode is Mode.CUT:
            writer.close()
            return
        try:
            peer_reader, peer_writer = await asyncio.wait_for(
                asyncio.open_connection(*self._target), 5
            )
        except (OSError, TimeoutError):
            writer.close()
            return
        self._writers.update((writer, peer_writer))
        up = asyncio.create_task(self._pump(reader, peer_writer, to_peer=True))
        down = asyncio.create_task(self._pump(peer_reader, writer, to_peer=False))
        for task in (up, down):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, peer_writer):
            w.close()
            self._writers.discard(w)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, to_peer: bool
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(CHUNK):
                await self._resume.wait()
                if self._mode is Mode.CUT:
                    return
                if not to_peer and self._mode is Mode.DROP_REPLIES:
                    continue
                if to_peer:
                    self.bytes_to_peer += len(data)
                    self.messages_to_peer += 1
                writer.write(data)
                await writer.drain()
