"""The one small interface the driver talks to, and which transport serves a resource.

`TCPIP::host::port::SOCKET` resources on the default backend (`@py`) go over mdfd's own
asyncio socket (stream.py): no thread, no VISA library. Everything else (INSTR, ASRL, GPIB,
USB, and any resource on an explicitly chosen backend such as `@ivi` or `@sim`) goes through
pyvisa's public API on the instrument's own worker thread (session.py, worker.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from pyvisa import rname

from .config import VisaInstrument
from .session import VisaSession
from .stream import SocketSession
from .worker import Worker

T = TypeVar("T")
OWN_SOCKET_BACKEND = "@py"


class Transport(Protocol):
    """One session with an instrument. Each call is one whole exchange (the driver's lock
    keeps them apart); a failure is a typed InstrumentError, `LinkDown` when nothing was sent.
    `stale` says the next use must `open` again (a late reply could be in flight)."""

    @property
    def stale(self) -> bool: ...

    async def open(self) -> str: ...

    async def query(self, commands: Sequence[str]) -> list[bytes]: ...

    async def write(self, command: str) -> None: ...

    async def close(self) -> None: ...


def transport_for(instrument: str, config: VisaInstrument) -> Transport:
    if owns_socket(config):
        return SocketSession(instrument, config)
    return ThreadedSession(instrument, config)


def owns_socket(config: VisaInstrument) -> bool:
    """True when mdfd's own socket transport serves this resource."""
    parsed = rname.parse_resource_name(config.resource)
    return isinstance(parsed, rname.TCPIPSocket) and config.backend == OWN_SOCKET_BACKEND


class ThreadedSession:
    """A blocking pyvisa session run on a worker thread of its own, started on first use and
    stopped on close (a thread still blocked in a cancelled exchange exits when its VISA
    timeout expires)."""

    def __init__(self, instrument: str, config: VisaInstrument) -> None:
        self._name = instrument
        self._session = VisaSession(instrument, config)
        self._worker: Worker | None = None

    @property
    def stale(self) -> bool:
        return self._session.stale

    async def open(self) -> str:
        return await self._call(self._session.open)

    async def query(self, commands: Sequence[str]) -> list[bytes]:
        return await self._call(self._session.query, commands)

    async def write(self, command: str) -> None:
        await self._call(self._session.write, command)

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        try:
            await worker.call(self._session.close)
        finally:
            worker.stop()

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        if self._worker is None:
            self._worker = Worker(f"visa-{self._name}")
        return await self._worker.call(function, *args)
