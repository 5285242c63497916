"""mdfd's own transport for `TCPIP::host::port::SOCKET` resources: SCPI over asyncio streams.

A raw SCPI socket is a byte stream with a termination character, which asyncio does natively:
no worker thread, no blocking call, no reaching into a VISA library's sessions. End of stream
says the peer closed, so a dropped connection is told from a silent instrument without a
peek: before an exchange sends anything, a stream already at EOF (or a transport already
closing) is `LinkDown`, which the driver may safely retry on a new connection. During an
exchange, EOF is `InstrumentDisconnected` and no reply within `timeout` is `InstrumentTimeout`;
either leaves the session stale (a late reply would answer the next query), so it is reopened
on a new connection before its next use. A caller cancelled mid-exchange leaves it stale too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import TypeVar

from pyvisa import rname

from ..errors import InstrumentDisconnected, InstrumentError, InstrumentTimeout, ProtocolError
from .config import VisaInstrument
from .scpi import Dialogue, LinkDown, OutOfStep, Scpi, Send

T = TypeVar("T")
# Longest reply read (a trace of many thousand floats fits); a longer one is a ProtocolError.
REPLY_LIMIT = 16 * 1024 * 1024


class SocketSession:
    """One TCP connection to a raw SCPI socket; the driver's lock serialises its callers."""

    def __init__(self, instrument: str, config: VisaInstrument) -> None:
        parsed = rname.parse_resource_name(config.resource)
        assert isinstance(parsed, rname.TCPIPSocket)
        self._host = parsed.host_address
        self._port = int(parsed.port)
        self._name = instrument
        self._config = config
        self._scpi = Scpi(instrument, config)
        self._termination = config.read_termination.encode(config.encoding)
        self._write_termination = config.write_termination
        # The bytes of each query sent (a config's queries and compound messages: few)
        self._encoded: dict[str, bytes] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.stale = True

    async def open(self) -> str:
        """Connect anew, discard stale errors, run the init sequence, return the identity."""
        self._drop()
        config = self._config
        try:
            async with asyncio.timeout(config.open_timeout):
                self._reader, self._writer = await asyncio.open_connection(
                    self._host, self._port, limit=REPLY_LIMIT
                )
        except TimeoutError:
            raise InstrumentDisconnected(
                self._name,
                f"cannot open: no connection within {config.open_timeout:g} s",
                address=config.resource,
            ) from None
        except OSError as exc:
            raise InstrumentDisconnected(
                self._name, f"cannot open: {exc}", address=config.resource
            ) from exc
        try:
            identity = await self._run(self._scpi.open())
        except BaseException:
            self._drop()
            raise
        self.stale = False
        return identity

    async def query(self, commands: Sequence[str]) -> list[bytes]:
        """The scan's messages exchanged in turn, each one coroutine (the dialogue of
        `Scpi.query` as data: no generator to drive per query)."""
        self._check_peer(commands[0] if commands else "")
        replies: list[bytes] = []
        with self._in_step():
            for message, group in self._scpi.messages(commands):
                replies += self._scpi.units(group, await self._exchange(message))
        return replies

    async def write(self, command: str) -> None:
        self._check_peer(command)
        await self._run(self._scpi.write(command))

    async def close(self) -> None:
        writer = self._writer
        self._drop()
        if writer is not None:
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(self._config.timeout):
                    await writer.wait_closed()

    async def _run(self, dialogue: Dialogue[T]) -> T:
        """Drive a dialogue (open, write: the error queue after a command) with stream I/O."""
        reply: bytes | None = None
        with self._in_step():
            try:
                while True:
                    try:
                        step = dialogue.send(reply)
                    except StopIteration as done:
                        return done.value
                    reply = None
                    if isinstance(step, Send):
                        if self._put(step.command, self._encode(step.command)):
                            await self._drain(step.command)
                    else:
                        reply = await self._exchange(step.command)
            finally:
                dialogue.close()

    @contextlib.contextmanager
    def _in_step(self) -> Iterator[None]:
        """Anything but an instrument's own complaint (a ProtocolError about a reply read
        whole) leaves the stream out of step: it is reopened before its next use."""
        try:
            yield
        except ProtocolError as exc:
            if isinstance(exc, OutOfStep):
                self.stale = True
            raise
        except BaseException:
            self.stale = True
            raise

    def _encode(self, command: str) -> bytes:
        try:
            return (command + self._write_termination).encode(self._config.encoding)
        except UnicodeEncodeError as exc:
            raise ProtocolError(
                self._name,
                f"{command!r} cannot be encoded as {self._config.encoding}: {exc.reason}",
                address=self._config.resource,
            ) from None

    def _put(self, command: str, data: bytes) -> bool:
        """Hand `data` to the transport; True when a backlog must be drained first."""
        reader, writer = self._require()
        if writer.is_closing() or reader.at_eof():
            raise self._lost(f"the peer closed the connection before {command!r} was sent")
        try:
            writer.write(data)
        except OSError as exc:
            raise self._lost(f"{command!r} failed: {exc}") from exc
        # A command fits the socket's buffer and leaves at once; only a backlog (a peer that
        # stopped reading) needs draining, and that wait is bounded like a read.
        return bool(writer.transport.get_write_buffer_size())

    async def _drain(self, command: str) -> None:
        _, writer = self._require()
        try:
            async with asyncio.timeout(self._config.timeout):
                await writer.drain()
        except TimeoutError:
            raise self._timeout(f"{command!r} not taken by the peer") from None
        except OSError as exc:
            raise self._lost(f"{command!r} failed: {exc}") from exc

    async def _exchange(self, command: str) -> bytes:
        """Send a query and read its reply: one coroutine for both halves."""
        data = self._encoded.get(command)
        if data is None:
            data = self._encoded[command] = self._encode(command)
        reader, _ = self._require()
        try:
            async with asyncio.timeout(self._config.timeout):
                if self._put(command, data):
                    await self._drain(command)
                raw = await reader.readuntil(self._termination)
        except TimeoutError:
            raise self._timeout(f"no reply to {command!r}") from None
        except asyncio.IncompleteReadError:
            raise self._lost(f"the peer closed the connection; no reply to {command!r}") from None
        except asyncio.LimitOverrunError:
            raise OutOfStep(
                self._name,
                f"reply to {command!r} longer than {REPLY_LIMIT} bytes",
                address=self._config.resource,
            ) from None
        except OSError as exc:
            raise self._lost(f"{command!r} failed: {exc}") from exc
        return raw[: -len(self._termination)]

    def _check_peer(self, command: str) -> None:
        """Refuse an exchange on a connection the peer has closed: nothing is sent yet."""
        reader, writer = self._require()
        if reader.at_eof() or writer.is_closing():
            self.stale = True
            raise LinkDown(
                self._name,
                f"the peer closed the connection; {command!r} not sent",
                address=self._config.resource,
            )

    def _require(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self.stale = True
            raise LinkDown(self._name, "not open", address=self._config.resource)
        return self._reader, self._writer

    def _timeout(self, message: str) -> InstrumentError:
        return InstrumentTimeout(
            self._name,
            f"{message} within {self._config.timeout:g} s",
            address=self._config.resource,
        )

    def _lost(self, message: str) -> InstrumentError:
        return InstrumentDisconnected(self._name, message, address=self._config.resource)

    def _drop(self) -> None:
        """Close the connection without waiting (safe from any failure path)."""
        writer, self._reader, self._writer = self._writer, None, None
        self.stale = True
        if writer is not None:
            writer.close()
