"""Coalescing: turn a scan of many channels into as few Modbus requests as the layout allows.

A request covers one table, at most 125 registers (2000 bits), and may bridge a gap of up to
`max_gap` unused addresses when that saves a round trip — on a serial bus at 19200 baud a
round trip costs far more than a few extra registers. Devices that reject reads of unmapped
addresses need `max_gap: 0`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .codec import Codec
from .config import ModbusChannel, Table


@dataclass(frozen=True, slots=True)
class Item:
    """One channel inside a request: `index` is its offset from the request's first address."""

    name: str
    index: int
    codec: Codec


@dataclass(frozen=True, slots=True)
class ReadRequest:
    table: Table
    address: int
    count: int
    items: tuple[Item, ...]

    def describe(self) -> str:
        return f"{self.table.value} {self.address}..{self.address + self.count - 1}"


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
    items = tuple(Item(name, channel.address - start, codec) for name, channel, codec in group)
    return ReadRequest(table, start, end - start, items)
