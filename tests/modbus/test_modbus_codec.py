"""Codec, coalescing plan and config rules, checked without a wire — and the codec checked
against pymodbus's own register conversion, which nobody here wrote."""

from __future__ import annotations

import struct

import pytest
from pydantic import ValidationError
from pymodbus.client import AsyncModbusTcpClient

from mdfd.drivers.modbus import ModbusChannel
from mdfd.drivers.modbus.codec import Codec, EncodeError, words_to_bytes
from mdfd.drivers.modbus.plan import plan_reads

PYMODBUS_TYPES = {
    "int16": AsyncModbusTcpClient.DATATYPE.INT16,
    "uint16": AsyncModbusTcpClient.DATATYPE.UINT16,
    "int32": AsyncModbusTcpClient.DATATYPE.INT32,
    "uint32": AsyncModbusTcpClient.DATATYPE.UINT32,
    "float32": AsyncModbusTcpClient.DATATYPE.FLOAT32,
    "float64": AsyncModbusTcpClient.DATATYPE.FLOAT64,
}
SAMPLES = {
    "int16": -12345,
    "uint16": 54321,
    "int32": -123456789,
    "uint32": 3_000_000_000,
    "float32": 1234.5,
    "float64": -98765.4321,
}


def channel(**fields: object) -> ModbusChannel:
    return ModbusChannel.model_validate({"address": 0, **fields})


def decode(codec: Codec, words: list[int]) -> object:
    return codec.decode(words_to_bytes(words), words, 0)


@pytest.mark.parametrize("dtype", list(SAMPLES))
@pytest.mark.parametrize("word_order", ["big", "little"])
def test_word_order_matches_pymodbus(dtype: str, word_order: str) -> None:
    codec = Codec(channel(type=dtype, word_order=word_order))
    words = codec.encode(SAMPLES[dtype])
    theirs = AsyncModbusTcpClient.convert_to_registers(
        SAMPLES[dtype], PYMODBUS_TYPES[dtype], word_order=word_order
    )
    assert words == theirs
    assert decode(codec, words) == pytest.approx(SAMPLES[dtype])


@pytest.mark.parametrize("dtype", list(SAMPLES))
@pytest.mark.parametrize("word_order", ["big", "little"])
def test_byte_order_swaps_bytes_inside_each_word(dtype: str, word_order: str) -> None:
    big = Codec(channel(type=dtype, word_order=word_order)).encode(SAMPLES[dtype])
    little = Codec(channel(type=dtype, word_order=word_order, byte_order="little"))
    words = little.encode(SAMPLES[dtype])
    assert words == [((w & 0xFF) << 8) | (w >> 8) for w in big]
    assert decode(little, words) == pytest.approx(SAMPLES[dtype])


def test_float32_orders_give_the_documented_byte_layouts() -> None:
    abcd = struct.pack(">f", 21.5)
    layouts = {
        ("big", "big"): abcd,
        ("little", "big"): abcd[2:] + abcd[:2],
        ("big", "little"): bytes([abcd[1], abcd[0], abcd[3], abcd[2]]),
        ("little", "little"): abcd[::-1],
    }
    for (word_order, byte_order), layout in layouts.items():
        codec = Codec(channel(type="float32", word_order=word_order, byte_order=byte_order))
        assert words_to_bytes(codec.encode(21.5)) == layout


def test_scale_and_offset_apply_both_ways() -> None:
    codec = Codec(channel(type="int16", scale=0.1, offset=-50.0))
    assert codec.encode(20.0) == [700]
    assert decode(codec, [700]) == pytest.approx(20.0)


def test_out_of_range_values_are_refused() -> None:
    with pytest.raises(EncodeError, match="outside int16"):
        Codec(channel(type="int16", scale=0.1)).encode(4000.0)
    with pytest.raises(EncodeError, match="outside uint16"):
        Codec(channel(type="uint16")).encode(-1)
    with pytest.raises(EncodeError, match="float32"):
        Codec(channel(type="float32")).encode(1e40)
    with pytest.raises(EncodeError, match="not a number"):
        Codec(channel(type="float32")).encode("warm")


def test_bit_of_a_register() -> None:
    codec = Codec(channel(table="input_register", type="bool", bit=2))
    assert decode(codec, [0b100]) is True
    assert decode(codec, [0b011]) is False


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"table": "coil", "type": "uint16"}, "type must be bool"),
        ({"table": "input_register", "type": "uint16", "writable": True}, "read-only"),
        ({"table": "holding_register", "type": "bool"}, "needs `bit`"),
        ({"table": "holding_register", "type": "bool", "bit": 1, "writable": True}, "atomic"),
        ({"type": "uint16", "bit": 3}, "only applies"),
        ({"type": "float64", "address": 65533}, "past the end"),
        ({"type": "uint16", "scale": 0}, "zero"),
        ({"type": "uint16", "colour": "red"}, "Extra inputs"),
    ],
)
def test_config_rules(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModbusChannel.model_validate({"address": 0, **fields})


def _plan(layout: dict[str, dict[str, object]], **limits: int) -> list[tuple[str, int, int]]:
    entries = []
    for name, fields in layout.items():
        config = ModbusChannel.model_validate(fields)
        entries.append((name, config, Codec(config)))
    options = {"max_gap": 8, "max_registers": 125, "max_bits": 2000, **limits}
    return [(r.table.value, r.address, r.count) for r in plan_reads(entries, **options)]


def test_fifty_neighbouring_floats_take_one_request() -> None:
    layout = {f"c{i}": {"address": 2 * i, "type": "float32"} for i in range(50)}
    assert _plan(layout) == [("holding_register", 0, 100)]


def test_a_request_never_exceeds_125_registers() -> None:
    layout = {f"c{i}": {"address": 2 * i, "type": "float32"} for i in range(100)}
    assert _plan(layout) == [("holding_register", 0, 124), ("holding_register", 124, 76)]


def test_gaps_are_bridged_up_to_max_gap() -> None:
    layout = {
        "a": {"address": 0},
        "b": {"address": 9},
        "c": {"address": 30},
    }
    assert _plan(layout, max_gap=8) == [("holding_register", 0, 10), ("holding_register", 30, 1)]
    assert _plan(layout, max_gap=0) == [
        ("holding_register", 0, 1),
        ("holding_register", 9, 1),
        ("holding_register", 30, 1),
    ]


def test_tables_are_never_mixed_and_bits_share_their_register() -> None:
    layout = {
        "coil": {"table": "coil", "address": 3, "type": "bool"},
        "di": {"table": "discrete_input", "address": 3, "type": "bool"},
        "flag0": {"table": "input_register", "address": 4, "type": "bool", "bit": 0},
        "flag1": {"table": "input_register", "address": 4, "type": "bool", "bit": 1},
        "hr": {"address": 4},
    }
    assert _plan(layout) == [
        ("coil", 3, 1),
        ("discrete_input", 3, 1),
        ("input_register", 4, 1),
        ("holding_register", 4, 1),
    ]
