"""One connection per TCP endpoint or serial port, shared and serialized.

pymodbus clients are not task-safe, and an RTU bus is a single wire: every instrument using the
same endpoint shares one `Link`, whose lock lets exactly one request be on the wire at a time.
Links live in a module-level registry, reference-counted by the drivers that acquired them.

The link maps every pymodbus failure onto a typed error and tracks whether the request left
this process, because that decides what a failed write means: not sent -> the device is
untouched (`InstrumentDisconnected`); sent but no valid answer -> `WriteOutcomeUnknown`, reported
and never repeated. pymodbus's own retries and auto-reconnect are switched off so that nothing
below us repeats a write behind our back; reconnection is ours, with tenacity's backoff.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from ..errors import (
    InstrumentDisconnected,
    InstrumentTimeout,
    ProtocolError,
    WriteOutcomeUnknown,
)
from .config import RtuLink, TcpLink
from .pdu import REPLY_CLASSES

Call = Callable[[Any], Awaitable[ModbusPDU]]
EXCEPTION_NAMES = {code.value: code.name for code in ExcCodes}


class GarbledReply(ProtocolError):
    """Bytes came back but never formed a valid frame (CRC, framing, header): a transmission
    fault rather than a refusal, so a read may be tried again."""


class _ConnectFailed(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Target:
    """Who a request is for, so every error names instrument, channel(s), table/address, unit."""

    instrument: str
    unit: int
    channel: str | None
    address: str


@dataclass(frozen=True, slots=True)
class Backoff:
    attempts: int
    first: float
    maximum: float


class Link:
    """A pymodbus client plus the lock, bookkeeping and error mapping around it."""

    def __init__(self, key: tuple[object, ...], config: TcpLink | RtuLink, timeout: float) -> None:
        self.key = key
        self.config = config
        self.lock = asyncio.Lock()
        self.refs = 0
        self.requests = 0
        self.connects = 0
        self._in_flight = False
        self._received = b""
        self._lost = False
        self._log = structlog.get_logger().bind(link=self.describe())
        common: dict[str, Any] = {
            "timeout": timeout,
            "retries": 0,
            "reconnect_delay": 0,
            "trace_packet": self._trace_packet,
            "trace_connect": self._trace_connect,
        }
        self.client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if isinstance(config, TcpLink):
            self.client = AsyncModbusTcpClient(config.host, port=config.port, **common)
        else:
            self.client = AsyncModbusSerialClient(
                config.device,
                baudrate=config.baudrate,
                parity=config.parity,
                stopbits=config.stopbits,
                bytesize=config.bytesize,
                **common,
            )
        for reply_class in REPLY_CLASSES:
            self.client.register(reply_class)

    def describe(self) -> str:
        if isinstance(self.config, TcpLink):
            return f"tcp {self.config.host}:{self.config.port}"
        return f"rtu {self.config.device}"

    @property
    def connected(self) -> bool:
        return self.client.connected

    async def connect(self, target: Target, backoff: Backoff, request_timeout: float) -> None:
        async with self.lock:
            await self._ensure_connected(target, backoff, request_timeout)

    def close(self) -> None:
        self.client.close()

    async def execute(
        self,
        target: Target,
        call: Call,
        function: int,
        *,
        request_timeout: float,
        backoff: Backoff,
        write: bool,
    ) -> ModbusPDU:
        """Run one request of Modbus `function`; return its (non-exception) response or raise a
        typed error."""
        async with self.lock:
            if not self.client.connected:
                await self._ensure_connected(target, backoff, request_timeout)
            self.client.ctx.comm_params.timeout_connect = request_timeout
            self._received = b""
            self._lost = False
            self._in_flight = True
            self.requests += 1
            try:
                response = await call(self.client)
            except ConnectionException as exc:
                raise self._failed(target, write, sent=self._lost, exc=exc) from None
            except ModbusIOException as exc:
                raise self._failed(target, write, sent=True, exc=exc) from None
            except ModbusException as exc:
                raise ProtocolError(
                    target.instrument,
                    f"unit {target.unit}: {exc}",
                    channel=target.channel,
                    address=target.address,
                ) from None
            finally:
                self._in_flight = False
        if response.isError():
            code = getattr(response, "exception_code", None)
            name = EXCEPTION_NAMES.get(code, "unknown") if isinstance(code, int) else "unknown"
            raise ProtocolError(
                target.instrument,
                f"unit {target.unit} answered with Modbus exception {code} ({name})",
                channel=target.channel,
                address=target.address,
                reply=f"function 0x{response.function_code:02x} exception {code}",
            )
        if response.function_code != function:
            # a late answer to an earlier request (RTU has no transaction ids)
            message = f"unit {target.unit}: reply to function {response.function_code}"
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
        return response

    async def _ensure_connected(
        self, target: Target, backoff: Backoff, request_timeout: float
    ) -> None:
        if self.client.connected:
            return
        self.client.ctx.comm_params.timeout_connect = request_timeout
        retrying = AsyncRetrying(
            stop=stop_after_attempt(backoff.attempts),
            wait=wait_exponential(multiplier=backoff.first, max=backoff.maximum),
            retry=retry_if_exception_type(_ConnectFailed),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if not await self.client.connect():
                        self._log.warning(
                            "modbus connect failed",
                            instrument=target.instrument,
                            attempt=attempt.retry_state.attempt_number,
                        )
                        raise _ConnectFailed
        except _ConnectFailed:
            raise InstrumentDisconnected(
                target.instrument,
                f"cannot connect to {self.describe()} after {backoff.attempts} attempts",
                channel=target.channel,
                address=target.address,
            ) from None
        self.connects += 1
        if self.connects > 1:
            self._log.info("modbus reconnected", instrument=target.instrument)

    def _failed(self, target: Target, write: bool, *, sent: bool, exc: Exception) -> Exception:
        """Map a failed exchange to its typed error; resynchronise the link if needed."""
        garbage = self._received
        if isinstance(self.config, TcpLink) and self.client.connected:
            # A late reply would be taken for the answer to the next request: start afresh.
            self.client.close()
        else:
            self.client.ctx.recv_buffer = b""
        unit = f"unit {target.unit}"
        if not sent:
            return InstrumentDisconnected(
                target.instrument,
                f"{unit}: not connected to {self.describe()}; request not sent",
                channel=target.channel,
                address=target.address,
            )
        if write:
            self._log.error(
                "modbus write outcome unknown; not repeated",
                instrument=target.instrument,
                channel=target.channel,
                address=target.address,
                unit=target.unit,
                cause=str(exc),
            )
            return WriteOutcomeUnknown(
                target.instrument,
                f"{unit}: write sent but no valid reply ({exc}); it may or may not have been "
                "applied and was not repeated",
                channel=target.channel,
                address=target.address,
                reply=garbage.hex(" ") if garbage else None,
            )
        if self._lost:
            return InstrumentDisconnected(
                target.instrument,
                f"{unit}: connection to {self.describe()} lost during the request",
                channel=target.channel,
                address=target.address,
            )
        if garbage:
            return GarbledReply(
                target.instrument,
                f"{unit}: reply could not be decoded (bad CRC, framing or header)",
                channel=target.channel,
                address=target.address,
                reply=garbage.hex(" "),
            )
        return InstrumentTimeout(
            target.instrument,
            f"{unit}: no reply within {self.client.ctx.comm_params.timeout_connect}s",
            channel=target.channel,
            address=target.address,
        )

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._received = data
        return data

    def _trace_connect(self, connected: bool) -> None:
        """Fail the request in flight at once when the peer goes away, instead of letting
        it run into its timeout."""
        if connected:
            return
        self._lost = True
        future = self.client.ctx.response_future
        if self._in_flight and not future.done():
            future.set_exception(ConnectionException("connection lost"))


_links: dict[tuple[object, ...], Link] = {}


def link_key(config: TcpLink | RtuLink) -> tuple[object, ...]:
    loop = id(asyncio.get_running_loop())
    if isinstance(config, TcpLink):
        return (loop, "tcp", config.host, config.port)
    return (loop, "rtu", os.path.abspath(config.device))


def acquire(config: TcpLink | RtuLink, timeout: float) -> Link:
    """The shared link for this endpoint, created on first use."""
    key = link_key(config)
    link = _links.get(key)
    if link is None:
        link = _links[key] = Link(key, config, timeout)
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
