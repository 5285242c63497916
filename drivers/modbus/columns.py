"""Columnar decoding: a planned request's reply turned into a float64 column with numpy.

`read` decodes a reply into one Python value per channel; `read_block` decodes the same reply
bytes with a few vectorised steps compiled once per request: the channels of one data type and
byte order are gathered as a (channels × words) matrix of the reply's registers (word order
applied by the gather's index), viewed as big-endian values of their type, scaled, and written
to their slots. The common layout — evenly spaced values all big-endian (or all little-endian,
words and bytes) — skips the gather: the reply is viewed in place with a stride. Bits (coils,
discrete inputs, bools inside registers) are gathered the same way.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .config import DataType
from .plan import ReadRequest

DTYPES = {
    DataType.INT16: ">i2",
    DataType.UINT16: ">u2",
    DataType.INT32: ">i4",
    DataType.UINT32: ">u4",
    DataType.FLOAT32: ">f4",
    DataType.FLOAT64: ">f8",
}
Floats = npt.NDArray[np.float64]
Indices = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class _Group:
    """Channels of one type and byte order in one reply: where their words are, where their
    values go, and how to scale them (None when every one is unscaled)."""

    dtype: np.dtype[np.generic]
    little_bytes: bool
    words: Indices  # (channels, registers per value), word order applied
    slots: Indices
    scale: Floats | None
    offset: Floats | None
    # Evenly spaced values whose registers are in one byte order (ABCD, or DCBA read as
    # little-endian) are a strided view of the reply: (dtype, first byte, byte step).
    strided: tuple[np.dtype[np.generic], int, int] | None

    def column(self, payload: bytes) -> Floats:
        """This group's values, in its slots' order, scaled."""
        if self.strided is not None:
            dtype, first, step = self.strided
            shape = (len(self.slots),)
            raw = np.ndarray(shape, dtype, buffer=payload, offset=first, strides=(step,))
        else:
            words = np.frombuffer(payload, dtype="<u2" if self.little_bytes else ">u2")
            # each row: one value's registers in big-endian word order, contiguous
            raw = words[self.words].astype(">u2").view(self.dtype)[:, 0]
        column = raw.astype(np.float64)
        if self.scale is not None and self.offset is not None:
            column *= self.scale
            column += self.offset
        return column


@dataclass(frozen=True, slots=True)
class _Bits:
    """Bools inside registers: the register, the bit, the slot."""

    words: Indices
    shifts: npt.NDArray[np.uint16]
    slots: Indices


@dataclass(frozen=True, slots=True)
class ColumnDecoder:
    """Decodes one `ReadRequest`'s reply into its items' values, in item order."""

    size: int
    bits: Indices | None  # coil / discrete input: each item's index in the reply's bits
    groups: tuple[_Group, ...]
    register_bits: _Bits | None
    whole: bool  # one group holding every item in item order: its column is the answer

    @classmethod
    def compile(cls, request: ReadRequest) -> ColumnDecoder:
        size = len(request.items)
        if request.bits:
            index = np.array([item.index for item in request.items], dtype=np.intp)
            return cls(size, index, (), None, False)
        keyed: dict[tuple[DataType, bool], list[int]] = {}
        flags: list[int] = []
        for slot, item in enumerate(request.items):
            if item.codec.dtype is DataType.BOOL:
                flags.append(slot)
            else:
                keyed.setdefault((item.codec.dtype, item.codec.little_bytes), []).append(slot)
        groups = tuple(
            _group(request, dtype, little_bytes, slots)
            for (dtype, little_bytes), slots in keyed.items()
        )
        register_bits = None
        if flags:
            register_bits = _Bits(
                np.array([request.items[s].index for s in flags], dtype=np.intp),
                np.array([request.items[s].codec.bit or 0 for s in flags], dtype=np.uint16),
                np.array(flags, dtype=np.intp),
            )
        whole = (
            len(groups) == 1
            and register_bits is None
            and groups[0].slots.tolist() == list(range(size))
        )
        return cls(size, None, groups, register_bits, whole)

    def decode(self, values: Sequence[int] | Sequence[bool], payload: bytes | None) -> Floats:
        """The items' values as float64 from the reply's bits, or its registers' big-endian
        `payload` bytes (rebuilt from `values` when the reply did not keep them)."""
        if self.bits is not None:
            return np.asarray(values, dtype=np.float64)[self.bits]
        if payload is None:
            payload = np.asarray(values, dtype=">u2").tobytes()
        if self.whole:
            return self.groups[0].column(payload)
        out = np.empty(self.size)
        for group in self.groups:
            out[group.slots] = group.column(payload)
        if self.register_bits is not None:
            flags = self.register_bits
            words = np.frombuffer(payload, dtype=">u2")
            out[flags.slots] = (words[flags.words] >> flags.shifts) & 1
        return out


def _group(request: ReadRequest, dtype: DataType, little_bytes: bool, slots: list[int]) -> _Group:
    items = [request.items[s] for s in slots]
    count = dtype.registers
    words = np.array(
        [
            [item.index + (count - 1 - j if item.codec.little_words else j) for j in range(count)]
            for item in items
        ],
        dtype=np.intp,
    )
    scaled = any(item.codec.scale != 1.0 or item.codec.offset != 0.0 for item in items)
    starts = [item.index for item in items]
    steps = {b - a for a, b in itertools.pairwise(starts)} or {count}
    one_order = {item.codec.little_words for item in items} == {little_bytes}
    strided = None
    if one_order and len(steps) == 1 and min(steps) >= 0:
        big = np.dtype(DTYPES[dtype])
        strided = (big.newbyteorder("<") if little_bytes else big, 2 * starts[0], 2 * steps.pop())
    return _Group(
        np.dtype(DTYPES[dtype]),
        little_bytes,
        words,
        np.array(slots, dtype=np.intp),
        np.array([item.codec.scale for item in items]) if scaled else None,
        np.array([item.codec.offset for item in items]) if scaled else None,
        strided,
    )
