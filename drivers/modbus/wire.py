"""Bytes to and from a Modbus device: a TCP socket (asyncio streams) or a serial port.

A wire knows nothing of frames. It opens, sends a frame's bytes, hands over whatever bytes
arrive, and says when the peer is gone (`WireClosed`) the moment the event loop learns it, so a
request in flight fails at once instead of at its timeout. Framing, transaction ids and error
mapping are the link's (`transport.py`).

The serial wire opens the port with pyserial for its line settings (baud rate, parity, stop
bits, termios) and then does non-blocking I/O on the port's file descriptor through the event
loop (`add_reader` / `add_writer`): no thread, nothing blocking the loop. It keeps Modbus RTU's
line discipline: a frame is only sent after the line has been silent for 3.5 characters, and
what arrived before a request (a late reply, noise) is dropped once the line is silent, so the
next answer starts on a frame boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Protocol

import serial

from .config import RtuLink, TcpLink

READ_CHUNK = 65536
FAST_LINE_SILENCE = 0.00175  # s; the spec's fixed t3.5 above 19200 baud


class WireClosed(Exception):
    """The peer or the port is gone. `sent` tells whether any byte of the frame being sent
    left this process before that was noticed."""

    def __init__(self, reason: str, *, sent: bool = False) -> None:
        super().__init__(reason)
        self.sent = sent


class Wire(Protocol):
    @property
    def is_open(self) -> bool: ...

    async def open(self, within: float) -> None: ...

    def abandon(self, until: float) -> None: ...

    async def settle(self) -> None: ...

    async def send(self, frame: bytes) -> None: ...

    async def receive(self) -> bytes: ...

    def close(self) -> None: ...


class TcpWire:
    """Modbus TCP over one asyncio stream connection."""

    def __init__(self, config: TcpLink) -> None:
        self._host = config.host
        self._port = config.port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def is_open(self) -> bool:
        """False as soon as the peer has closed its side, even with no request in flight."""
        return (
            self._writer is not None
            and self._reader is not None
            and not self._reader.at_eof()
            and not self._writer.is_closing()
        )

    async def open(self, within: float) -> None:
        self.close()
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self._host, self._port), within
            )
        except (OSError, TimeoutError) as exc:
            raise WireClosed(str(exc) or type(exc).__name__) from None

    def abandon(self, until: float) -> None:
        """Nothing to remember: a stale reply is told apart by its transaction id."""

    async def settle(self) -> None:
        """Nothing to wait for: a stale reply is told apart by its transaction id."""

    async def send(self, frame: bytes) -> None:
        if self._writer is None or not self.is_open:
            raise WireClosed("not connected")
        try:
            self._writer.write(frame)
        except (OSError, RuntimeError) as exc:
            raise WireClosed(str(exc)) from None
        try:
            await self._writer.drain()
        except OSError as exc:
            raise WireClosed(str(exc), sent=True) from None

    async def receive(self) -> bytes:
        if self._reader is None:
            raise WireClosed("not connected")
        try:
            data = await self._reader.read(READ_CHUNK)
        except OSError as exc:
            raise WireClosed(str(exc), sent=True) from None
        if not data:
            raise WireClosed("connection closed by the peer", sent=True)
        return data

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class SerialWire:
    """Modbus RTU on a serial port (or a pty), driven by the event loop."""

    def __init__(self, config: RtuLink) -> None:
        self._config = config
        bits = 1 + config.bytesize + (0 if config.parity == "N" else 1) + config.stopbits
        self._char_time = bits / config.baudrate
        self._silence = FAST_LINE_SILENCE if config.baudrate > 19200 else 3.5 * self._char_time
        self._port: serial.Serial | None = None
        self._fd = -1
        self._inbox = bytearray()
        self._arrived: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._quiet_at = 0.0
        self._abandoned_until = 0.0
        self._lost: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def is_open(self) -> bool:
        return self._port is not None and self._lost is None

    async def open(self, within: float) -> None:
        """Open and configure the port on a worker thread (a USB adapter's open can take a
        while), then hand its descriptor to the event loop."""
        self.close()
        loop = asyncio.get_running_loop()
        opening = loop.run_in_executor(None, self._open_port)
        try:
            port = await asyncio.wait_for(asyncio.shield(opening), within)
        except TimeoutError:
            opening.add_done_callback(_close_late_port)
            raise WireClosed(f"opening {self._config.device} took longer than {within}s") from None
        except (OSError, serial.SerialException, ValueError) as exc:
            raise WireClosed(str(exc)) from None
        self._loop = loop
        self._port = port
        self._fd = port.fileno()
        self._lost = None
        self._inbox.clear()
        self._quiet_at = time.monotonic() + self._silence
        loop.add_reader(self._fd, self._on_readable)

    def _open_port(self) -> serial.Serial:
        return serial.Serial(
            self._config.device,
            baudrate=self._config.baudrate,
            parity=self._config.parity,
            stopbits=self._config.stopbits,
            bytesize=self._config.bytesize,
            timeout=0,
        )

    def abandon(self, until: float) -> None:
        """A request was given up (its caller cancelled) while its reply may still come, up
        to the monotonic time `until`: the next `settle` waits for it, so that reply is never
        taken for the next request's answer (RTU has no transaction ids)."""
        self._abandoned_until = until

    async def settle(self) -> None:
        """Wait for the reply of an abandoned request, if any, and until the line has been
        silent for 3.5 characters; then drop what came in since the last answer (a late
        reply, noise), so that the next reply starts on a frame boundary."""
        while (
            not self._inbox
            and self._lost is None
            and (left := self._abandoned_until - time.monotonic()) > 0
        ):
            assert self._loop is not None
            self._arrived = self._loop.create_future()
            try:
                await asyncio.wait_for(self._arrived, left)
            except TimeoutError:
                break
            finally:
                self._arrived = None
        self._abandoned_until = 0.0
        while (wait := self._quiet_at - time.monotonic()) > 0:  # noqa: ASYNC110 - a deadline each byte moves on, not an event
            await asyncio.sleep(wait)
        self._inbox.clear()

    async def send(self, frame: bytes) -> None:
        if not self.is_open:
            raise WireClosed(self._lost or "port not open")
        view = memoryview(frame)
        while view:
            try:
                written = os.write(self._fd, view)
            except (BlockingIOError, InterruptedError):
                await self._until_writable()
                continue
            except OSError as exc:
                self._lose(str(exc))
                raise WireClosed(str(exc), sent=len(view) < len(frame)) from None
            view = view[written:]
        self._quiet_at = time.monotonic() + len(frame) * self._char_time + self._silence

    async def receive(self) -> bytes:
        while not self._inbox:
            if self._lost is not None:
                raise WireClosed(self._lost, sent=True)
            assert self._loop is not None
            self._arrived = self._loop.create_future()
            try:
                await self._arrived
            finally:
                self._arrived = None
        data = bytes(self._inbox)
        self._inbox.clear()
        return data

    def close(self) -> None:
        if self._port is None:
            return
        port, self._port = self._port, None
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._lose("port closed")
        port.close()
        self._fd = -1

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lose(str(exc))
            return
        if not data:
            self._lose("end of file on the port")
            return
        self._inbox += data
        self._quiet_at = time.monotonic() + self._silence
        _wake(self._arrived)

    async def _until_writable(self) -> None:
        assert self._loop is not None
        self._writable = self._loop.create_future()
        self._loop.add_writer(self._fd, _wake, self._writable)
        try:
            await self._writable
        finally:
            self._loop.remove_writer(self._fd)
            self._writable = None
        if self._lost is not None:
            raise WireClosed(self._lost, sent=True)

    def _lose(self, reason: str) -> None:
        """The port is gone (the other end hung up, the adapter was unplugged): stop watching
        it and wake whoever waits, so the request in flight fails now."""
        if self._lost is None:
            self._lost = reason
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
        _wake(self._arrived)
        _wake(self._writable)


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


def _close_late_port(opening: asyncio.Future[serial.Serial]) -> None:
    """A port whose open outlived its timeout is closed when it finally opens."""
    if not opening.cancelled() and opening.exception() is None:
        with contextlib.suppress(OSError):
            opening.result().close()
