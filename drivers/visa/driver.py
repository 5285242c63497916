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

Buffered acquisitions (`buffer:` in the config) use the instrument's reading memory: the start
commands (CONF, SAMP:COUN, SAMP:TIM, INIT), then one fetch query (`R? {most}`) per many scans,
placed in time on the host (buffer.py). They share the lock, so a fetch and a read queue on
the wire like two reads. A fetch never reopens the session: a reopen runs `init`, which may
reset the instrument and its memory, and scans lost so would shift every later scan's time;
so a fetch on a session lost or reopened since the start fails typed and the engine starts the
acquisition again (start_buffer reopens).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from math import isfinite
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import structlog
from pyvisa import rname

from ..base import (
    DriverContext,
    InstrumentConfig,
    Quality,
    Reading,
    Scans,
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
from .buffer import BufferRun
from .config import BufferConfig, Parse, VisaChannel, VisaInstrument
from .parse import ParseFailure, decode_reply, format_command, parse_readings, parse_reply
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
        self._sessions = 0  # sessions opened: a buffered run is valid on the one it began on
        self._run: BufferRun | None = None
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

    # --- Buffered: the instrument's reading memory

    def buffers(self, channels: Sequence[str], rate: float, count: int) -> bool:
        """Whether the reading memory takes this acquisition: exactly the configured
        `buffer.channel`, at up to `buffer.max_rate` scans/s, 1 to `buffer.max_count` scans.
        No I/O."""
        buffer = self.config.buffer
        return (
            buffer is not None
            and list(channels) == [buffer.channel]
            and 0 < rate <= buffer.max_rate
            and 1 <= count <= buffer.max_count
        )

    async def start_buffer(self, channels: Sequence[str], rate: float, count: int) -> None:
        """Write the start commands (each followed by the error-queue check, as a write), and
        note the start time just before the last one, which starts the run."""
        buffer = self._buffer_for(channels, rate, count)
        commands = buffer.start_commands(rate, count)
        async with self._lock:
            self._run = None
            started = await self._write_sequence(commands)
            self._run = BufferRun(buffer.channel, started, rate, count, session=self._sessions)

    async def fetch_buffer(self, most: int) -> Scans:
        """One fetch query for up to `most` readings (fewer when `buffer.max_fetch`, which
        bounds the reply's size, or the scans still to come are fewer); with `buffer.overflow`
        its register is read in the same exchange, and a set flag fails the fetch."""
        async with self._lock:
            run = self._live_run()
            buffer = self._buffer_config()
            ask = min(most, buffer.max_fetch, run.remaining)
            if ask < 1:
                return run.scans(np.empty(0, np.float64))
            queries = [buffer.fetch.format(most=ask)]
            if buffer.overflow is not None:
                queries.append(buffer.overflow.query)
            replies = await self._transport.query(queries)
            return run.scans(self._readings(replies, queries, ask, run.channel))

    async def stop_buffer(self) -> None:
        """Write the stop commands; nothing when no run was started or the driver is closed.
        Unfetched readings stay in the memory until the next start clears it."""
        async with self._lock:
            run, self._run = self._run, None
            if run is None or self._closed:
                return
            await self._write_sequence(self._buffer_config().stop)

    def _buffer_for(self, channels: Sequence[str], rate: float, count: int) -> BufferConfig:
        """The buffer config, when it can take this acquisition; ChannelError before the wire
        when it cannot (the engine asks `buffers` first, so this is a caller's mistake)."""
        buffer = self._buffer_config()
        if not self.buffers(channels, rate, count):
            raise ChannelError(
                self.name,
                f"the reading memory takes only [{buffer.channel!r}] at up to"
                f" {buffer.max_rate:g} scans/s, 1 to {buffer.max_count} scans; not"
                f" {list(channels)} at {rate:g} scans/s, {count} scans",
                channel=buffer.channel,
            )
        return buffer

    def _buffer_config(self) -> BufferConfig:
        if self.config.buffer is None:
            raise ChannelError(self.name, "no `buffer` is configured: not a buffered instrument")
        return self.config.buffer

    def _live_run(self) -> BufferRun:
        """The run a fetch continues, on the session it began on (see the module docstring)."""
        if self._closed:
            raise InstrumentDisconnected(self.name, "not connected", address=self.config.resource)
        run = self._run
        if run is None:
            raise ChannelError(self.name, "no buffered acquisition was started")
        if self._transport.stale or run.session != self._sessions:
            raise InstrumentDisconnected(
                self.name,
                "the session was lost or reopened since the buffered acquisition started (a"
                " reopen may reset the instrument's memory); start it again",
                address=self.config.resource,
            )
        return run

    def _readings(
        self, replies: list[bytes], queries: list[str], ask: int, channel: str
    ) -> npt.NDArray[np.float64]:
        try:
            readings = parse_readings(replies[0], self.config.encoding)
        except ParseFailure as exc:
            raise self._garbled(queries[0], channel, exc, replies[0]) from None
        if len(readings) > ask:
            raise self._garbled(
                queries[0],
                channel,
                ParseFailure(f"{len(readings)} readings, asked for {ask}"),
                replies[0],
            )
        overflow = self._buffer_config().overflow
        if overflow is not None and self._register(replies[1], queries[1]) & overflow.mask:
            raise ProtocolError(
                self.name,
                f"the reading memory overflowed ({queries[1]!r}): readings were lost, so the"
                " scans' times are unknown; start the acquisition again",
                channel=channel,
                address=self.config.resource,
                reply=replies[1],
            )
        return readings

    def _register(self, raw: bytes, query: str) -> int:
        text = self._decode(raw, query, None).strip()
        try:
            return int(text)
        except ValueError:
            raise self._garbled(
                query, None, ParseFailure(f"not an integer: {text!r}"), raw
            ) from None

    # --- helpers; the caller holds self._lock

    async def _write_sequence(self, commands: Sequence[str]) -> float:
        """Write `commands` in order, each checked as a write is; the clock just before the
        last one is returned. A link found down before a command went out is reopened and the
        whole sequence sent again: the reopen ran `init`, so the earlier ones may be undone."""
        await self._ensure_open()
        try:
            return await self._write_each(commands)
        except LinkDown as exc:
            self._log.warning("link down in a command sequence; reconnecting", error=str(exc))
            await self._reopen()
            return await self._write_each(commands)

    async def _write_each(self, commands: Sequence[str]) -> float:
        *first, last = commands
        for command in first:
            await self._transport.write(command)
        sent = self._context.clock()
        await self._transport.write(last)
        return sent

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
        self._sessions += 1
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
        self._run = None
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
