"""Coalescing: turn a scan of many channels into as few Modbus requests as the layout allows.

A request covers one table, at most 125 registers (2000 bits), and may bridge a gap of up to
`max_gap` unused addresses when that saves a round trip — on a serial bus at 19200 baud a
round trip costs far more than a few extra registers. Devices that reject reads of unmapped
addresses need `max_gap: 0`.

A request also compiles how to decode its reply: the plain (big-endian, unscaled) values of a
block are unpacked by one precompiled struct in a single call, the rest channel by channel.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .codec import FORMATS, Codec, words_to_bytes
from .config import ModbusChannel, Table

READ_FUNCTIONS = {
    Table.COIL: 1,
    Table.DISCRETE_INPUT: 2,
    Table.HOLDING_REGISTER: 3,
    Table.INPUT_REGISTER: 4,
}


@dataclass(frozen=True, slots=True)
class Item:
    """One channel inside a request: `index` is its offset from the request's first address."""

    name: str
    index: int
    codec: Codec
    unit: str


@dataclass(frozen=True, slots=True)
class ReadRequest:
    table: Table
    address: int
    count: int
    items: tuple[Item, ...]
    bits: bool = field(init=False)
    function: int = field(init=False)
    names: tuple[str, ...] = field(init=False)
    units: tuple[str, ...] = field(init=False)
    _bulk: struct.Struct | None = field(init=False)
    _bulk_slots: tuple[int, ...] = field(init=False)
    _single: tuple[tuple[int, Item], ...] = field(init=False)
    _in_order: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "bits", self.table.is_bit)
        set_(self, "function", READ_FUNCTIONS[self.table])
        set_(self, "names", tuple(item.name for item in self.items))
        set_(self, "units", tuple(item.unit for item in self.items))
        bulk, slots, single = _compile(self.items, self.table)
        set_(self, "_bulk", bulk)
        set_(self, "_bulk_slots", slots)
        set_(self, "_single", single)
        set_(self, "_in_order", tuple(range(len(self.items))))

    def decode(
        self, values: Sequence[int] | Sequence[bool], payload: bytes | None = None
    ) -> list[float | int | bool]:
        """Every item's value, in item order, from the reply's registers (or bits); `payload`
        is the same registers as the big-endian bytes of the reply when the reply kept them."""
        if self.bits:
            return [bool(values[item.index]) for item in self.items]
        block = payload if payload is not None else words_to_bytes(values)
        if self._bulk is not None and not self._single and self._bulk_slots == self._in_order:
            return list(self._bulk.unpack_from(block))
        out: list[float | int | bool] = [0] * len(self.items)
        if self._bulk is not None:
            for slot, value in zip(self._bulk_slots, self._bulk.unpack_from(block), strict=True):
                out[slot] = value
        for slot, item in self._single:
            out[slot] = item.codec.decode(block, values, item.index)
        return out


def _compile(
    items: tuple[Item, ...], table: Table
) -> tuple[struct.Struct | None, tuple[int, ...], tuple[tuple[int, Item], ...]]:
    """One struct for the plain, non-overlapping register values; the rest decoded singly."""
    if table.is_bit:
        return None, (), ()
    fmt, slots, single = ">", [], []
    position = 0
    for slot, item in sorted(enumerate(items), key=lambda pair: pair[1].index):
        codec = item.codec
        if codec.plain and item.index >= position:
            fmt += f"{2 * (item.index - position)}x" if item.index > position else ""
            fmt += FORMATS[codec.dtype]
            slots.append(slot)
            position = item.index + codec.count
        else:
            single.append((slot, item))
    bulk = struct.Struct(fmt) if slots else None
    return bulk, tuple(slots), tuple(single)


def plan_reads(
    channels: Iterable[tuple[str, ModbusChannel, Codec]],
    *,
    max_gap: int,
    max_registers: int,
    max_bits: int,
) -> list[ReadRequest]:
    """Requests reading every channel, in table then address order."""
    by_table: dict[Table, list[tuple[str, ModbusChannel, Codec]]] = {}
    for entry in channels:
        by_table.setdefault(entry[1].table, []).append(entry)
    requests: list[ReadRequest] = []
    for table in Table:
        entries = sorted(by_table.get(table, ()), key=lambda e: e[1].address)
        limit = max_bits if table.is_bit else max_registers
        group: list[tuple[str, ModbusChannel, Codec]] = []
        start = end = 0
        for entry in entries:
            address = entry[1].address
            stop = address + (1 if table.is_bit else entry[2].count)
            if group and address - end <= max_gap and max(end, stop) - start <= limit:
                group.append(entry)
                end = max(end, stop)
                continue
            if group:
                requests.append(_request(table, start, end, group))
            group, start, end = [entry], address, stop
        if group:
            requests.append(_request(table, start, end, group))
    return requests


def _request(
    table: Table, start: int, end: int, group: list[tuple[str, ModbusChannel, Codec]]
) -> ReadRequest:
    items = tuple(
        Item(name, channel.address - start, codec, channel.unit) for name, channel, codec in group
    )
    return ReadRequest(table, start, end - start, items)
