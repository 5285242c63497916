"""One connection per TCP endpoint or serial port, shared and serialized.

An RTU bus is a single wire and a TCP gateway one socket: every instrument using the same
endpoint shares one `Link`, whose lock lets exactly one request be on the wire at a time.
Links live in a module-level registry, reference-counted by the drivers that acquired them.

The link is mdfd's own Modbus transport (see docs/decisions/0051-own-modbus-transport.md):
bytes move over a `Wire` (asyncio streams for TCP, pyserial plus the event loop for RTU), and
pymodbus is used only through its public API, to build frames (`FramerSocket`/`FramerRTU`
`buildFrame`) and to parse replies (`handleFrame` with a `DecodePDU`). Each request is one
attempt: nothing below the engine repeats a write, or a read, behind its back.

Every failure maps onto a typed error, and the link tracks whether the request left this
process, because that decides what a failed write means: not sent -> the device is untouched
(`InstrumentDisconnected`); sent but no valid answer -> `WriteOutcomeUnknown`, reported and
never repeated. A late reply is never taken for the next answer: on TCP its transaction id
does not match and it is skipped; on RTU the line is left to fall silent and what came before
the request is dropped.
"""

from __future__ import annotations

import asyncio
import enum
import os
import time
from dataclasses import dataclass

import structlog
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU, ModbusPDU
from tenacity import RetryCallState

from ..base import Reconnect
from ..errors import (
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
    ProtocolError,
    WriteOutcomeUnknown,
)
from .config import RtuLink, TcpLink
from .pdu import REPLY_CLASSES
from .wire import SerialWire, TcpWire, Wire, WireClosed

EXCEPTION_NAMES = {code.value: code.name for code in ExcCodes}
MBAP_MAX_LENGTH = 254  # unit id + the largest PDU (253 bytes)
WRITE_FUNCTIONS = frozenset({5, 6, 15, 16})


class GarbledReply(ProtocolError):
    """Bytes came back but never formed a valid frame (CRC, framing, header): a transmission
    fault rather than a refusal, so the engine may try a read again."""


class _Garbled(Exception):
    """The bytes received cannot be (or start) a valid frame."""


class Failure(enum.Enum):
    """Why an exchange ended without a valid reply."""

    LOST = "lost"
    TIMEOUT = "timeout"
    GARBLED = "garbled"


@dataclass(frozen=True, slots=True)
class Target:
    """Who a request is for, so every error names instrument, channel(s), table/address, unit."""

    instrument: str
    unit: int
    channel: str | None
    address: str


class Link:
    """A wire, a framer and the lock, bookkeeping and error mapping around them."""

    def __init__(self, key: tuple[object, ...], config: TcpLink | RtuLink) -> None:
        self.key = key
        self.config = config
        self.lock = asyncio.Lock()
        self.refs = 0
        self.requests = 0
        self.connects = 0
        self._tcp = isinstance(config, TcpLink)
        self._wire: Wire = TcpWire(config) if isinstance(config, TcpLink) else SerialWire(config)
        decoder = DecodePDU(is_server=False)
        for reply_class in REPLY_CLASSES:
            decoder.register(reply_class)
        self._framer: FramerSocket | FramerRTU = (
            FramerSocket(decoder) if self._tcp else FramerRTU(decoder)
        )
        self._tid = 0
        self._buffer = b""
        self._log = structlog.get_logger().bind(link=self.describe())

    def describe(self) -> str:
        if isinstance(self.config, TcpLink):
            return f"tcp {self.config.host}:{self.config.port}"
        return f"rtu {self.config.device}"

    @property
    def connected(self) -> bool:
        return self._wire.is_open

    async def connect(self, target: Target, reconnect: Reconnect, within: float) -> None:
        async with self.lock:
            if not self._wire.is_open:
                await self._open(target, reconnect, within)

    def close(self) -> None:
        self._wire.close()
        self._buffer = b""

    async def execute(
        self,
        target: Target,
        request: ModbusPDU,
        *,
        within: float,
        reconnect: Reconnect,
        write: bool,
    ) -> ModbusPDU:
        """Send `request` once and return its (non-exception) reply within `within` seconds,
        or raise a typed error. A link found down is reopened first, with `reconnect`."""
        async with self.lock:
            if not self._wire.is_open:
                await self._open(target, reconnect, within)
            self.requests += 1
            self._tid = self._tid % 0xFFFF + 1
            request.transaction_id = self._tid
            request.dev_id = target.unit
            frame = self._framer.buildFrame(request)
            received = bytearray()
            sent = False
            deadline = time.monotonic() + within
            try:
                async with asyncio.timeout(within):
                    await self._wire.settle()
                    if not self._tcp:
                        self._buffer = b""
                    await self._wire.send(frame)
                    sent = True
                    response = await self._reply(self._tid, received)
            except WireClosed as exc:
                self.close()
                raise self._failed(
                    target, write, Failure.LOST, sent=sent or exc.sent, received=received
                ) from None
            except TimeoutError:
                if self._tcp:
                    # a peer that does not answer may be half-open or wedged: start afresh
                    self.close()
                raise self._failed(
                    target, write, Failure.TIMEOUT, sent=sent, received=received, within=within
                ) from None
            except asyncio.CancelledError:
                # The caller gave up with the reply still on its way. Keep one request per
                # connection outstanding: many devices (pymodbus's own server among them)
                # mis-answer pipelined requests, so TCP starts afresh and RTU waits it out.
                if sent and self._tcp:
                    self.close()
                elif sent:
                    self._wire.abandon(deadline)
                raise
            except _Garbled:
                if self._tcp:
                    self.close()  # no way to find the next frame boundary in a byte stream
                raise self._failed(
                    target, write, Failure.GARBLED, sent=True, received=received
                ) from None
        return self._check(target, request, response, write)

    async def _reply(self, tid: int, received: bytearray) -> ModbusPDU:
        """The reply to transaction `tid`: bytes are read until they form a frame; on TCP,
        replies to earlier (abandoned) requests are skipped by their transaction id."""
        while True:
            while self._buffer:
                if self._tcp and _bad_mbap(self._buffer):
                    raise _Garbled
                try:
                    used, response = self._framer.handleFrame(self._buffer, 0, 0)
                except ModbusIOException:
                    raise _Garbled from None
                if response is None:
                    if used:
                        raise _Garbled  # RTU: a whole frame whose CRC does not match
                    break
                self._buffer = self._buffer[used:]
                if self._tcp and response.transaction_id != tid:
                    self._log.debug("late reply skipped", transaction=response.transaction_id)
                    continue
                return response
            chunk = await self._wire.receive()
            received += chunk
            self._buffer += chunk

    def _check(
        self, target: Target, request: ModbusPDU, response: ModbusPDU, write: bool
    ) -> ModbusPDU:
        """Refuse a reply that is not the answer to `request` (another unit's, another
        function's: on RTU, a late answer to an earlier request) or that is an exception."""
        function = request.function_code
        other_unit = target.unit != 0 and response.dev_id != target.unit  # 0: any answers
        if (response.function_code & 0x7F) != function or other_unit:
            message = (
                f"unit {target.unit}: reply to function {response.function_code & 0x7F} "
                f"from unit {response.dev_id}"
            )
            if write:
                raise WriteOutcomeUnknown(
                    target.instrument,
                    f"{message} while waiting for the write's; it was not repeated",
                    channel=target.channel,
                    address=target.address,
                )
            raise GarbledReply(
                target.instrument,
                f"{message}, expected {function}",
                channel=target.channel,
                address=target.address,
            )
        if response.isError():
            code = response.exception_code
            name = EXCEPTION_NAMES.get(code, "unknown")
            raise ProtocolError(
                target.instrument,
                f"unit {target.unit} answered with Modbus exception {code} ({name})",
                channel=target.channel,
                address=target.address,
                reply=f"function 0x{function:02x} exception {code}",
            )
        if function in WRITE_FUNCTIONS and response.address != request.address:
            raise WriteOutcomeUnknown(
                target.instrument,
                f"unit {target.unit}: the reply confirms address {response.address}, not "
                f"{request.address}; the write was not repeated",
                channel=target.channel,
                address=target.address,
            )
        return response

    async def _open(self, target: Target, reconnect: Reconnect, within: float) -> None:
        """Open the wire (each attempt bounded by `within`), with `reconnect`'s attempts and
        backoff between them while it cannot be opened at all. Opening sends no request:
        repeating it repeats nothing on the instrument."""

        def failed(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            self._log.warning(
                "modbus connect failed",
                instrument=target.instrument,
                attempt=state.attempt_number,
                error=str(error),
            )

        try:
            await reconnect.retrying(WireClosed, failed)(self._wire.open, within)
        except WireClosed as exc:
            raise InstrumentDisconnected(
                target.instrument,
                f"cannot connect to {self.describe()} after {reconnect.attempts} attempts ({exc})",
                channel=target.channel,
                address=target.address,
            ) from None
        self._buffer = b""
        self.connects += 1
        if self.connects > 1:
            self._log.info("modbus reconnected", instrument=target.instrument)

    def _failed(
        self,
        target: Target,
        write: bool,
        failure: Failure,
        *,
        sent: bool,
        received: bytearray,
        within: float = 0.0,
    ) -> InstrumentError:
        """The typed error for an exchange that got no valid reply."""
        unit = f"unit {target.unit}"
        garbage = bytes(received).hex(" ") if received else None
        where = {"channel": target.channel, "address": target.address}
        if not sent:
            if failure is Failure.TIMEOUT:
                return InstrumentTimeout(
                    target.instrument,
                    f"{unit}: {self.describe()} did not fall silent within {within}s; "
                    "request not sent",
                    **where,
                )
            return InstrumentDisconnected(
                target.instrument,
                f"{unit}: not connected to {self.describe()}; request not sent",
                **where,
            )
        if write:
            cause = {
                Failure.LOST: "connection lost",
                Failure.TIMEOUT: f"no reply within {within}s",
                Failure.GARBLED: "reply could not be decoded",
            }[failure]
            self._log.error(
                "modbus write outcome unknown; not repeated",
                instrument=target.instrument,
                unit=target.unit,
                cause=cause,
                **where,
            )
            return WriteOutcomeUnknown(
                target.instrument,
                f"{unit}: write sent but no valid reply ({cause}); it may or may not have "
                "been applied and was not repeated",
                reply=garbage,
                **where,
            )
        if failure is Failure.LOST:
            return InstrumentDisconnected(
                target.instrument,
                f"{unit}: connection to {self.describe()} lost during the request",
                **where,
            )
        if garbage is not None:
            return GarbledReply(
                target.instrument,
                f"{unit}: reply could not be decoded (bad CRC, framing or header)",
                reply=garbage,
                **where,
            )
        return InstrumentTimeout(target.instrument, f"{unit}: no reply within {within}s", **where)


def _bad_mbap(buffer: bytes) -> bool:
    """An MBAP header no valid frame has: protocol id not 0, or an impossible length."""
    if len(buffer) < 6:
        return False
    length = int.from_bytes(buffer[4:6], "big")
    return buffer[2:4] != b"\x00\x00" or not 2 <= length <= MBAP_MAX_LENGTH


_links: dict[tuple[object, ...], Link] = {}


def link_key(config: TcpLink | RtuLink) -> tuple[object, ...]:
    loop = id(asyncio.get_running_loop())
    if isinstance(config, TcpLink):
        return (loop, "tcp", config.host, config.port)
    return (loop, "rtu", os.path.abspath(config.device))


def acquire(config: TcpLink | RtuLink) -> Link:
    """The shared link for this endpoint, created on first use."""
    key = link_key(config)
    link = _links.get(key)
    if link is None:
        link = _links[key] = Link(key, config)
    elif link.config != config:
        structlog.get_logger().warning(
            "modbus link shared with different line settings; the first ones apply",
            link=link.describe(),
            first=link.config.model_dump(),
            ignored=config.model_dump(),
        )
    link.refs += 1
    return link


def release(link: Link) -> None:
    """Drop one reference; the last one closes the connection."""
    link.refs -= 1
    if link.refs <= 0:
        link.close()
        if _links.get(link.key) is link:
            del _links[link.key]
