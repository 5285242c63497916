"""The `visa` driver: SCPI instruments over a raw TCP socket of its own, or through pyvisa.

The transport is chosen by the resource string (transport.py): `TCPIP::...::SOCKET` goes over
mdfd's own asyncio streams (stream.py), everything else through pyvisa on the instrument's
own worker thread (session.py, worker.py). Both run the same SCPI dialogue (scpi.py). An
asyncio lock per instrument queues callers on the event loop so each exchange runs whole. A
read queries its channels in order on one session in one exchange, asking each distinct query
once (channels that take different fields of `MEAS:ALL?` cost one round trip). With
`queries_per_message` > 1 the queries travel as IEEE 488.2 compound messages
(`MEAS:CAP?;:MEAS:LOSS?`): a 5-channel scan is one round trip instead of five.

Reconnects: a lost or stale session is reopened with exponential backoff (tenacity) before the
next exchange. Each call is one attempt (the engine owns retries): a read or write whose link
was found down before anything was sent goes out on the reopened session; a read that failed
mid-exchange raises its typed error and the next call reconnects. A write that failed during
the write or its error check may or may not have landed, so it is reported as
WriteOutcomeUnknown and never repeated.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from math import isfinite
from typing import ClassVar

import structlog
from pyvisa import rname

from ..base import (
    DriverContext,
    InstrumentConfig,
    Quality,
    Reading,
    Value,
    check_writable,
    judged,
)
from ..errors import (
    ChannelError,
    InstrumentDisconnected,
    InstrumentTimeout,
    ProtocolError,
    WriteOutcomeUnknown,
)
from .config import Parse, VisaChannel, VisaInstrument
from .parse import ParseFailure, decode_reply, format_command, parse_reply
from .scpi import LinkDown
from .transport import transport_for

log = structlog.get_logger()
PLANS_KEPT = 64
GOOD, BAD = Quality.GOOD, Quality.BAD


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """A channel list's distinct queries and, per channel, its query, its reply's index and
    whether the reply is a plain number (parse `float`, no field)."""

    queries: list[str]
    items: tuple[tuple[str, VisaChannel, str, int, bool], ...]


# Serial ports held by a driver of this process. RS-232 is point to point: two sessions on one
# port would read each other's replies, so the port has one owner (the first to connect).
_serial_owners: dict[str, VisaDriver] = {}


class VisaDriver:
    config_model: ClassVar[type[InstrumentConfig]] = VisaInstrument

    def __init__(self, name: str, config: VisaInstrument, context: DriverContext) -> None:
        self.name = name
        self.config = config
        self._context = context
        self._transport = transport_for(name, config)
        self._lock = asyncio.Lock()
        self._plans: dict[tuple[str, ...], ScanPlan] = {}
        self._identity: str | None = None
        self._closed = True
        self._port: str | None = None
        self._log = log.bind(instrument=name, resource=config.resource)

    async def connect(self) -> None:
        async with self._lock:
            self._claim_port()
            self._closed = False
            try:
                await self._reopen()
            except BaseException:
                await self._shut()
                raise

    async def close(self) -> None:
        async with self._lock:
            await self._shut()

    async def identify(self) -> str:
        async with self._lock:
            await self._ensure_open()
            query = self.config.identity_query
            replies = await self._transport.query([query])
        self._identity = self._decode(replies[0], query, None).strip()
        return self._identity

    async def read(self, channels: Sequence[str]) -> dict[str, Reading]:
        key = tuple(channels)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(key)
        async with self._lock:
            if self._closed or self._transport.stale:  # the common case awaits nothing here
                await self._ensure_open()
            try:
                replies = await self._transport.query(plan.queries)
            except LinkDown as exc:
                # Found down before anything was sent: reconnecting is not a retry.
                self._log.warning("link down before a read; reconnecting", error=str(exc))
                await self._reopen()
                replies = await self._transport.query(plan.queries)
        now = self._context.clock()
        out: dict[str, Reading] = {}
        for name, channel, query, index, plain in plan.items:
            raw = replies[index]
            value: Value
            if plain:
                # A plain number: float() takes the ASCII bytes as they came. Anything it
                # refuses goes the general way, which names what is wrong with the reply.
                try:
                    number = float(raw)
                except ValueError:
                    value = self._parse(raw, channel, query, name)
                else:
                    good = isfinite(number)  # `judged`, for a float
                    out[name] = Reading(number, channel.unit, now, GOOD if good else BAD)
                    continue
            else:
                value = self._parse(raw, channel, query, name)
            out[name] = Reading(value, channel.unit, now, judged(value))
        return out

    def _parse(self, raw: bytes, channel: VisaChannel, query: str, name: str) -> Value:
        reply = self._decode(raw, query, name)
        try:
            return parse_reply(reply, channel)
        except ParseFailure as exc:
            raise self._garbled(query, name, exc, reply) from None

    def _plan(self, key: tuple[str, ...]) -> ScanPlan:
        """Each distinct query once, in order, and where each channel's reply is; kept per
        channel list (a recipe reads a handful)."""
        configs = {name: self._readable(name) for name in key}
        queries = list(dict.fromkeys(c.query for c in configs.values() if c.query is not None))
        index = {query: i for i, query in enumerate(queries)}
        items = tuple(
            (name, channel, channel.query, index[channel.query], _plain_number(channel))
            for name, channel in configs.items()
            if channel.query is not None
        )
        plan = ScanPlan(queries, items)
        if len(self._plans) >= PLANS_KEPT:
            del self._plans[next(iter(self._plans))]
        self._plans[key] = plan
        return plan

    async def write(self, channel: str, value: Value) -> None:
        config = self._channel(channel)
        check_writable(self.name, channel, config, value)
        assert config.write is not None
        try:
            command = format_command(config.write, value)
        except ParseFailure as exc:
            raise ChannelError(self.name, str(exc), channel=channel) from None
        async with self._lock:
            await self._ensure_open()
            try:
                try:
                    await self._transport.write(command)
                except LinkDown as exc:
                    self._log.warning("link down before a write; reconnecting", error=str(exc))
                    await self._reopen()
                    await self._transport.write(command)
            except (InstrumentDisconnected, InstrumentTimeout) as exc:
                self._log.error(
                    "write outcome unknown; not retried", channel=channel, command=command
                )
                raise WriteOutcomeUnknown(
                    self.name,
                    f"{command!r} may or may not have been applied: {exc.message}",
                    channel=channel,
                    address=self.config.resource,
                ) from exc
            except ProtocolError as exc:
                raise ProtocolError(
                    self.name,
                    exc.message,
                    channel=channel,
                    address=self.config.resource,
                    reply=exc.reply,
                ) from exc

    # --- helpers; the caller holds self._lock

    async def _ensure_open(self) -> None:
        if self._closed:
            raise InstrumentDisconnected(self.name, "not connected", address=self.config.resource)
        if self._transport.stale:
            await self._reopen()

    async def _reopen(self) -> None:
        # Only a link that cannot be opened is tried again; a peer that accepts and does not
        # answer the opening queries is a timeout the engine sees at once (decision 0063).
        retrying = self.config.reconnect.retrying(
            InstrumentDisconnected,
            lambda state: self._log.warning(
                "open failed; retrying",
                attempt=state.attempt_number,
                error=str(state.outcome.exception()) if state.outcome else None,
            ),
        )
        async for attempt in retrying:
            with attempt:
                self._identity = (await self._transport.open()).strip()
        self._log.info("session open", identity=self._identity)

    def _decode(self, raw: bytes, query: str, channel: str | None) -> str:
        try:
            return decode_reply(raw, self.config.encoding)
        except ParseFailure as exc:
            raise self._garbled(query, channel, exc, raw) from None

    def _garbled(
        self, query: str, channel: str | None, exc: ParseFailure, reply: object
    ) -> ProtocolError:
        return ProtocolError(
            self.name,
            f"reply to {query!r}: {exc}",
            channel=channel,
            address=self.config.resource,
            reply=reply,
        )

    async def _shut(self) -> None:
        self._closed = True
        try:
            await self._transport.close()
        finally:
            if self._port is not None and _serial_owners.get(self._port) is self:
                del _serial_owners[self._port]

    def _claim_port(self) -> None:
        self._port = _serial_port(self.config)
        if self._port is None:
            return
        owner = _serial_owners.setdefault(self._port, self)
        if owner is not self:
            raise InstrumentDisconnected(
                self.name,
                f"serial port {self._port} is owned by instrument {owner.name!r}",
                address=self.config.resource,
            )

    def _channel(self, name: str) -> VisaChannel:
        try:
            return self.config.channels[name]
        except KeyError:
            raise ChannelError(self.name, "no such channel", channel=name) from None

    def _readable(self, name: str) -> VisaChannel:
        channel = self._channel(name)
        if channel.query is None:
            raise ChannelError(self.name, "channel has no query (write-only)", channel=name)
        return channel


def _plain_number(channel: VisaChannel) -> bool:
    return channel.parse is Parse.FLOAT and channel.field is None


def _serial_port(config: VisaInstrument) -> str | None:
    """The device a serial resource names, symlinks resolved (two names, one port)."""
    name = rname.parse_resource_name(config.resource)
    if not isinstance(name, rname.ASRLInstr):
        return None
    board = str(name.board)
    return os.path.realpath(board) if board.startswith("/") else board
