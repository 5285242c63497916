"""The `modbus` driver: Modbus TCP and RTU instruments through one async contract.

A scan is planned once per distinct channel list (coalesced requests, compiled codecs) and then
replayed, so the steady-state cost of a scan is the round trips plus the unpacking.
Each call is one attempt (the engine owns retries, as the recipe's `on_error` says): a read or a
write is sent once, a write that may or may not have landed raises `WriteOutcomeUnknown`, and a
link found down is reopened by the next call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import structlog
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.bit_message import (
    ReadCoilsRequest,
    ReadDiscreteInputsRequest,
    WriteSingleCoilRequest,
)
from pymodbus.pdu.mei_message import ReadDeviceInformationRequest
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadInputRegistersRequest,
    WriteMultipleRegistersRequest,
    WriteSingleRegisterRequest,
)

from ..base import BAD_CODE, Block, DriverContext, InstrumentConfig, Reading, Value, check_writable
from ..errors import ChannelError, InstrumentDisconnected, InstrumentError
from .codec import Codec, EncodeError
from .columns import ColumnDecoder
from .config import ModbusChannel, ModbusInstrument, Table
from .plan import ReadRequest, plan_reads
from .readings import build_readings
from .transport import GarbledReply, Link, Target, acquire, release

PlannedRead = tuple[ReadRequest, Target, ModbusPDU]


@dataclass(frozen=True, slots=True)
class BlockPlan:
    """A channel list's requests with their column decoders, and `order`: where each asked
    channel's value sits in the requests' concatenated items (a channel asked twice is read
    once)."""

    reads: list[PlannedRead]
    decoders: tuple[ColumnDecoder, ...]
    order: npt.NDArray[np.intp]
    in_order: bool  # one request whose items are the channels as asked: no reordering


READ_REQUESTS: dict[Table, type[ModbusPDU]] = {
    Table.COIL: ReadCoilsRequest,
    Table.DISCRETE_INPUT: ReadDiscreteInputsRequest,
    Table.HOLDING_REGISTER: ReadHoldingRegistersRequest,
    Table.INPUT_REGISTER: ReadInputRegistersRequest,
}


class ModbusDriver:
    config_model: ClassVar[type[InstrumentConfig]] = ModbusInstrument

    def __init__(self, name: str, config: ModbusInstrument, context: DriverContext) -> None:
        self.name = name
        self.config = config
        self._clock = context.clock
        self._codecs = {ch: Codec(cfg) for ch, cfg in config.channels.items()}
        self._plans: dict[tuple[str, ...], list[PlannedRead]] = {}
        self._block_plans: dict[tuple[str, ...], BlockPlan] = {}
        self._write_targets: dict[str, Target] = {}
        self._link: Link | None = None
        self._log = structlog.get_logger().bind(instrument=name, unit=config.unit)
        self.requests = 0

    @property
    def link(self) -> Link | None:
        """The shared connection this instrument uses while connected."""
        return self._link

    async def connect(self) -> None:
        if self._link is not None:
            return
        link = acquire(self.config.link)
        target = Target(self.name, self.config.unit, None, link.describe())
        try:
            await link.connect(target, self.config.reconnect, self.config.timeout)
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
                link, target, ReadDeviceInformationRequest(), write=False
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
        for request, target, pdu in self._plan(channels):
            values = request.decode(*await self._read_request(link, request, target, pdu))
            readings = build_readings(values, request.units, self._clock())
            out.update(zip(request.names, readings, strict=True))
        return out

    async def read_block(self, channels: Sequence[str]) -> Block:
        """The scan as columns (`BlockReadable`): the same requests as `read`, each reply
        decoded with numpy. Modbus has no per-value status: only NaN or ±inf is BAD."""
        link = self._require_link()
        key = tuple(channels)
        plan = self._block_plan(key)
        parts = []
        for (request, target, pdu), decoder in zip(plan.reads, plan.decoders, strict=True):
            registers, payload = await self._read_request(link, request, target, pdu)
            parts.append(decoder.decode(registers, payload))
        stamp = self._clock()
        column = parts[0] if plan.in_order else np.concatenate(parts)[plan.order]
        quality = np.zeros(len(key), np.uint8)
        finite = np.isfinite(column)
        if not finite.all():
            bad = ~finite
            column[bad] = np.nan
            quality[bad] = BAD_CODE
        return Block(key, column, quality, stamp)

    def _block_plan(self, key: tuple[str, ...]) -> BlockPlan:
        plan = self._block_plans.get(key)
        if plan is None:
            reads = self._plan(key)
            position: dict[str, int] = {}
            for request, _, _ in reads:
                for name in request.names:
                    position[name] = len(position)
            order = [position[name] for name in key]
            plan = BlockPlan(
                reads,
                tuple(ColumnDecoder.compile(request) for request, _, _ in reads),
                np.array(order, dtype=np.intp),
                len(reads) == 1 and order == list(range(len(position))),
            )
            self._block_plans[key] = plan
        return plan

    async def write(self, channel: str, value: Value) -> None:
        link = self._require_link()
        config = self._channel(channel)
        check_writable(self.name, channel, config, value)
        target = self._write_targets.get(channel)
        if target is None:  # what error messages name: worked out once per channel
            target = self._target(channel, config.table, config.address, config.type.registers)
            self._write_targets[channel] = target
        request: ModbusPDU
        if config.table is Table.COIL:
            bit = _as_bool(value)
            if bit is None:
                raise ChannelError(self.name, f"{value!r} is not a boolean", channel=channel)
            request = WriteSingleCoilRequest(address=config.address, bits=[bit])
        else:
            try:
                words = self._codecs[channel].encode(_number(value))
            except EncodeError as exc:
                raise ChannelError(self.name, str(exc), channel=channel) from None
            if len(words) == 1:
                request = WriteSingleRegisterRequest(address=config.address, registers=words)
            else:
                request = WriteMultipleRegistersRequest(address=config.address, registers=words)
        await self._execute(link, target, request, write=True)
        self._log.debug("modbus write", channel=channel, value=value)

    async def _read_request(
        self, link: Link, request: ReadRequest, target: Target, pdu: ModbusPDU
    ) -> tuple[list[Any], bytes | None]:
        response = await self._execute(link, target, pdu, write=False)
        values = response.bits if request.bits else response.registers
        # bits come padded to whole bytes; registers exactly as many as asked
        fits = len(values) >= request.count if request.bits else len(values) == request.count
        if not fits:
            raise GarbledReply(
                self.name,
                f"unit {self.config.unit}: asked for {request.count} values, got {len(values)}",
                channel=target.channel,
                address=target.address,
                reply=values,
            )
        return list(values), getattr(response, "payload", None)

    async def _execute(
        self, link: Link, target: Target, request: ModbusPDU, *, write: bool
    ) -> ModbusPDU:
        self.requests += 1
        return await link.execute(
            target,
            request,
            within=self.config.timeout,
            reconnect=self.config.reconnect,
            write=write,
        )

    def _plan(self, channels: Sequence[str]) -> list[PlannedRead]:
        """The requests for this channel list with their error labels and request PDUs,
        compiled once. A PDU is shared by concurrent scans: the link stamps its transaction
        id and builds its frame under the link's lock, before anything is awaited."""
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
                (
                    r,
                    self._target(",".join(r.names), r.table, r.address, r.count),
                    READ_REQUESTS[r.table](address=r.address, count=r.count),
                )
                for r in requests
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
