"""The `modbus` driver: Modbus TCP and RTU instruments through one async contract.

A scan is planned once per distinct channel list (coalesced requests, compiled codecs) and then
replayed, so the steady-state cost of a scan is the round trips plus the unpacking.
Reads are idempotent and are retried (after a reconnect when the link dropped); writes are sent
once: a write that may or may not have landed raises `WriteOutcomeUnknown`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import structlog
from pymodbus.pdu import ModbusPDU

from ..base import DriverContext, InstrumentConfig, Reading, Value, check_writable
from ..errors import ChannelError, InstrumentDisconnected, InstrumentError, InstrumentTimeout
from .codec import Codec, EncodeError
from .config import ModbusChannel, ModbusInstrument, Table
from .plan import ReadRequest, plan_reads
from .readings import build_readings
from .transport import Backoff, GarbledReply, Link, Target, acquire, release

RETRYABLE = (InstrumentTimeout, InstrumentDisconnected, GarbledReply)


class ModbusDriver:
    config_model: ClassVar[type[InstrumentConfig]] = ModbusInstrument

    def __init__(self, name: str, config: ModbusInstrument, context: DriverContext) -> None:
        self.name = name
        self.config = config
        self._clock = context.clock
        self._codecs = {ch: Codec(cfg) for ch, cfg in config.channels.items()}
        self._plans: dict[tuple[str, ...], list[tuple[ReadRequest, Target]]] = {}
        self._link: Link | None = None
        self._backoff = Backoff(
            config.reconnect_attempts, config.reconnect_backoff, config.reconnect_backoff_max
        )
        self._log = structlog.get_logger().bind(instrument=name, unit=config.unit)
        self.requests = 0

    @property
    def link(self) -> Link | None:
        """The shared connection this instrument uses while connected."""
        return self._link

    async def connect(self) -> None:
        if self._link is not None:
            return
        link = acquire(self.config.link, self.config.timeout)
        target = Target(self.name, self.config.unit, None, link.describe())
        try:
            await link.connect(target, self._backoff, self.config.timeout)
        except BaseException:
            release(link)
            raise
        self._link = link

    async def close(self) -> None:
        if self._link is not None:
            link, self._link = self._link, None
            release(link)

    async def identify(self) -> str:
        """Vendor,product,revision from Read Device Identification (0x2B/0x0E) when the device
        offers it, else the configured identity."""
        link = self._require_link()
        target = Target(self.name, self.config.unit, None, "device identification")
        try:
            response = await self._execute(
                link,
                target,
                lambda c: c.read_device_information(device_id=self.config.unit),
                0x2B,
                write=False,
            )
        except InstrumentError as exc:
            if self.config.identity is not None:
                return self.config.identity
            if isinstance(exc, InstrumentDisconnected):
                raise
            return f"modbus,unit {self.config.unit},{link.describe()}"
        info = getattr(response, "information", {}) or {}
        parts = [_text(info.get(i)) for i in (0, 1, 2)]
        if any(parts):
            return ",".join(parts)
        return self.config.identity or f"modbus,unit {self.config.unit},{link.describe()}"

    async def read(self, channels: Sequence[str]) -> dict[str, Reading]:
        link = self._require_link()
        out: dict[str, Reading] = {}
        for request, target in self._plan(channels):
            values = request.decode(*await self._read_request(link, request, target))
            readings = build_readings(values, request.units, self._clock())
            out.update(zip(request.names, readings, strict=True))
        return out

    async def write(self, channel: str, value: Value) -> None:
        link = self._require_link()
        config = self._channel(channel)
        check_writable(self.name, channel, config, value)
        target = self._target(channel, config.table, config.address, config.type.registers)
        unit = self.config.unit
        if config.table is Table.COIL:
            bit = _as_bool(value)
            if bit is None:
                raise ChannelError(self.name, f"{value!r} is not a boolean", channel=channel)

            def call(client: Any) -> Any:
                return client.write_coil(config.address, bit, device_id=unit)

            function = 5
        else:
            try:
                words = self._codecs[channel].encode(_number(value))
            except EncodeError as exc:
                raise ChannelError(self.name, str(exc), channel=channel) from None
            if len(words) == 1:

                def call(client: Any) -> Any:
                    return client.write_register(config.address, words[0], device_id=unit)

                function = 6
            else:

                def call(client: Any) -> Any:
                    return client.write_registers(config.address, words, device_id=unit)

                function = 16

        await self._execute(link, target, call, function, write=True)
        self._log.debug("modbus write", channel=channel, value=value)

    async def _read_request(
        self, link: Link, request: ReadRequest, target: Target
    ) -> tuple[list[Any], bytes | None]:
        unit = self.config.unit
        table = request.table
        if table is Table.COIL:

            def call(client: Any) -> Any:
                return client.read_coils(request.address, count=request.count, device_id=unit)
        elif table is Table.DISCRETE_INPUT:

            def call(client: Any) -> Any:
                return client.read_discrete_inputs(
                    request.address, count=request.count, device_id=unit
                )
        elif table is Table.INPUT_REGISTER:

            def call(client: Any) -> Any:
                return client.read_input_registers(
                    request.address, count=request.count, device_id=unit
                )
        else:

            def call(client: Any) -> Any:
                return client.read_holding_registers(
                    request.address, count=request.count, device_id=unit
                )

        attempt = 0
        while True:
            try:
                response = await self._execute(link, target, call, request.function, write=False)
                break
            except RETRYABLE as exc:
                if attempt >= self.config.retries:
                    raise
                attempt += 1
                self._log.warning("modbus read retried", attempt=attempt, error=str(exc))
        values = response.bits if request.bits else response.registers
        if len(values) < request.count:
            raise GarbledReply(
                self.name,
                f"unit {unit}: asked for {request.count} values, got {len(values)}",
                channel=target.channel,
                address=target.address,
                reply=values,
            )
        return values, getattr(response, "payload", None)

    async def _execute(
        self, link: Link, target: Target, call: Any, function: int, *, write: bool
    ) -> ModbusPDU:
        self.requests += 1
        return await link.execute(
            target,
            call,
            function,
            request_timeout=self.config.timeout,
            backoff=self._backoff,
            write=write,
        )

    def _plan(self, channels: Sequence[str]) -> list[tuple[ReadRequest, Target]]:
        """The requests (and their error labels) for this channel list, compiled once."""
        key = tuple(channels)
        plan = self._plans.get(key)
        if plan is None:
            entries = [(n, self._channel(n), self._codecs[n]) for n in dict.fromkeys(channels)]
            requests = plan_reads(
                entries,
                max_gap=self.config.max_gap,
                max_registers=self.config.max_registers,
                max_bits=self.config.max_bits,
            )
            plan = [
                (r, self._target(",".join(r.names), r.table, r.address, r.count)) for r in requests
            ]
            self._plans[key] = plan
        return plan

    def _target(self, channel: str, table: Table, address: int, count: int) -> Target:
        end = f"..{address + count - 1}" if count > 1 else ""
        return Target(
            self.name,
            self.config.unit,
            channel,
            f"unit {self.config.unit} {table.value} {address}{end}",
        )

    def _channel(self, name: str) -> ModbusChannel:
        try:
            return self.config.channels[name]
        except KeyError:
            raise ChannelError(self.name, "no such channel", channel=name) from None

    def _require_link(self) -> Link:
        if self._link is None:
            raise InstrumentDisconnected(self.name, "not connected (call connect first)")
        return self._link


def _as_bool(value: Value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "on", "off", "1", "0"):
        return value.lower() in ("true", "on", "1")
    return None


def _number(value: Value) -> float | int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise EncodeError(f"{value!r} is not a number") from None
    raise EncodeError(f"{value!r} is not a number")


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip()
    return "" if value is None else str(value).strip()
