"""The `thermostat` driver: a bath thermostat that answers one line per command over TCP.

    ID?                -> "Acme,BT-200,SN42"
    GET <name>         -> "<value>"            e.g. GET temperature -> "24.98"
    SET <name> <value> -> "OK" | "ERR <text>"

It follows the rules of `mdfd.drivers.base.Driver`: one attempt per call (the engine owns
retries), a lazy reconnect on the next call after the link is lost, every wait bounded by the
configured timeout, timestamps from the injected clock, typed errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field

from mdfd.drivers import (
    ChannelConfig,
    ChannelError,
    DriverContext,
    InstrumentConfig,
    InstrumentDisconnected,
    InstrumentTimeout,
    ProtocolError,
    Reading,
    Value,
    WriteOutcomeUnknown,
    check_writable,
)


class LinkDown(InstrumentDisconnected):
    """No connection, so nothing was sent: a write that fails this way certainly did not land."""


class ThermostatChannel(ChannelConfig):
    """A channel is a name the instrument knows (`GET name`)."""

    name: str | None = Field(default=None, description="instrument's name; default: the key")


class ThermostatInstrument(InstrumentConfig[ThermostatChannel]):
    driver: Literal["thermostat"]
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    timeout: float = Field(default=1.0, gt=0, le=60, description="seconds per command")


class ThermostatDriver:
    config_model: ClassVar[type[InstrumentConfig]] = ThermostatInstrument

    def __init__(self, name: str, config: ThermostatInstrument, context: DriverContext) -> None:
        self.name = name
        self.config = config
        self._context = context
        self._lock = asyncio.Lock()  # one command on the wire at a time
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._closed = True

    async def connect(self) -> None:
        self._closed = False
        async with self._lock:
            await self._ensure_open()

    async def close(self) -> None:
        self._closed = True
        async with self._lock:
            await self._drop()

    async def identify(self) -> str:
        return await self._command("ID?")

    async def read(self, channels: Sequence[str]) -> dict[str, Reading]:
        configs = [self._channel(name) for name in channels]  # unknown -> before the wire
        out: dict[str, Reading] = {}
        for name, channel in zip(channels, configs, strict=True):
            reply = await self._command(f"GET {channel.name or name}")
            try:
                value = float(reply)
            except ValueError:
                raise ProtocolError(self.name, "not a number", channel=name, reply=reply) from None
            out[name] = Reading(value, channel.unit, self._context.clock())
        return out

    async def write(self, channel: str, value: Value) -> None:
        config = self._channel(channel)
        check_writable(self.name, channel, config, value)
        try:
            reply = await self._command(f"SET {config.name or channel} {value}")
        except LinkDown:
            raise
        except (InstrumentTimeout, InstrumentDisconnected) as exc:
            # The command may have landed: say so, never repeat it blindly.
            raise WriteOutcomeUnknown(self.name, str(exc.message), channel=channel) from exc
        if reply != "OK":
            raise ProtocolError(self.name, "write refused", channel=channel, reply=reply)

    def _channel(self, name: str) -> ThermostatChannel:
        try:
            return self.config.channels[name]
        except KeyError:
            raise ChannelError(self.name, "no such channel", channel=name) from None

    async def _command(self, line: str) -> str:
        if self._closed:
            raise LinkDown(self.name, "closed")
        async with self._lock:
            reader, writer = await self._ensure_open()
            try:
                async with asyncio.timeout(self.config.timeout):
                    writer.write(line.encode() + b"\n")
                    await writer.drain()
                    answer = await reader.readline()
            except TimeoutError:
                await self._drop()  # a late answer must not be read as the next one's
                raise InstrumentTimeout(self.name, f"no answer to {line!r}") from None
            except OSError as exc:
                await self._drop()
                raise InstrumentDisconnected(self.name, f"link lost: {exc}") from exc
            if not answer:
                await self._drop()
                raise InstrumentDisconnected(self.name, "peer closed the connection")
            return answer.decode().strip()

    async def _ensure_open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._streams is None:
            try:
                async with asyncio.timeout(self.config.timeout):
                    self._streams = await asyncio.open_connection(
                        self.config.host, self.config.port
                    )
            except (OSError, TimeoutError) as exc:
                raise LinkDown(self.name, f"cannot connect: {exc}") from exc
        return self._streams

    async def _drop(self) -> None:
        if self._streams is not None:
            _, writer = self._streams
            self._streams = None
            writer.close()
            try:
                async with asyncio.timeout(self.config.timeout):
                    await writer.wait_closed()
            except (OSError, TimeoutError):
                pass
