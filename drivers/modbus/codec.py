"""Register encoding: the bytes a device means, turned into engineering values and back.

Devices disagree on the order of the 16-bit words inside a 32/64-bit value (`word_order`) and,
more rarely, on the order of the two bytes inside each word (`byte_order`); both are per
channel. Decoding is on the hot path of every scan, so each channel compiles its struct and
its order handling once.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from .config import DataType, ModbusChannel

FORMATS = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}
INTEGER_RANGES = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
}


class EncodeError(ValueError):
    """The value cannot be represented in the channel's type after scale and offset."""


def _swap_bytes(words: Sequence[int]) -> list[int]:
    return [((word & 0xFF) << 8) | (word >> 8) for word in words]


def words_to_bytes(words: Sequence[int]) -> bytes:
    return struct.pack(f">{len(words)}H", *words)


class Codec:
    """Decode and encode one channel's value."""

    __slots__ = (
        "_native",
        "_scaled",
        "_struct",
        "bit",
        "count",
        "dtype",
        "little_bytes",
        "little_words",
        "offset",
        "plain",
        "scale",
    )

    def __init__(self, channel: ModbusChannel) -> None:
        self.dtype = channel.type
        self.count = channel.type.registers
        self.bit = channel.bit
        self.scale = channel.scale
        self.offset = channel.offset
        self.little_words = channel.word_order == "little"
        self.little_bytes = channel.byte_order == "little"
        self._native = not (self.little_words or self.little_bytes)
        self._scaled = self.scale != 1.0 or self.offset != 0.0
        fmt = FORMATS.get(self.dtype)
        self._struct = struct.Struct(">" + fmt) if fmt else None
        # plain: the raw big-endian value is the engineering value (one struct can batch it)
        self.plain = self._native and not self._scaled and self._struct is not None

    def decode(self, block: bytes, registers: Sequence[int], index: int) -> float | int | bool:
        """The value starting at register `index` of a block read in one request.

        `block` is the same registers as big-endian bytes, built once per request so the
        common (big/big) case is a single `unpack_from`.
        """
        if self._struct is None:
            return bool((registers[index] >> (self.bit or 0)) & 1)
        if self._native:
            raw = self._struct.unpack_from(block, 2 * index)[0]
        else:
            words = registers[index : index + self.count]
            if self.little_bytes:
                words = _swap_bytes(words)
            if self.little_words:
                words = words[::-1]
            raw = self._struct.unpack(words_to_bytes(words))[0]
        if self._scaled:
            return raw * self.scale + self.offset
        return raw

    def encode(self, value: float | int | bool | str) -> list[int]:
        """Registers to write for `value` (engineering units), in the device's order."""
        if self._struct is None:
            raise EncodeError("a bit inside a register cannot be encoded on its own")
        if isinstance(value, str):
            raise EncodeError(f"{value!r} is not a number")
        raw = (float(value) - self.offset) / self.scale
        if not math.isfinite(raw) and self.dtype not in (DataType.FLOAT32, DataType.FLOAT64):
            raise EncodeError(f"{value} is not finite")
        packed_value: float | int = raw
        if self.dtype in INTEGER_RANGES:
            low, high = INTEGER_RANGES[self.dtype]
            packed_value = round(raw)
            if not low <= packed_value <= high:
                raise EncodeError(
                    f"{value} encodes to {packed_value}, outside {self.dtype.value} [{low}, {high}]"
                )
        try:
            data = self._struct.pack(packed_value)
        except (OverflowError, struct.error) as exc:
            raise EncodeError(f"{value} does not fit a {self.dtype.value}: {exc}") from None
        words = list(struct.unpack(f">{self.count}H", data))
        if self.little_words:
            words = words[::-1]
        if self.little_bytes:
            words = _swap_bytes(words)
        return words
