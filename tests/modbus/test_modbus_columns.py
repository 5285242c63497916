"""`read_block`'s numpy decoding against `read`'s per-channel decoding: the same registers give
the same values for every type, word and byte order, scale and bit — and over the wire, a
block is the same requests as a scan."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modbus_support import PV_CHANNELS, hold_temperature, instrument

from mdfd.drivers import DriverContext
from mdfd.drivers.modbus import ModbusChannel, ModbusDriver
from mdfd.drivers.modbus.codec import Codec
from mdfd.drivers.modbus.columns import ColumnDecoder
from mdfd.drivers.modbus.plan import plan_reads
from mdfd.simulators.furnace import FurnaceSimulator

TYPES = ["int16", "uint16", "int32", "uint32", "float32", "float64", "bool"]
REGISTERS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4}


@st.composite
def layouts(draw: st.DrawFn) -> dict[str, ModbusChannel]:
    """Channels packed into one register table, overlapping allowed (a bit and its word)."""
    channels: dict[str, ModbusChannel] = {}
    for i in range(draw(st.integers(1, 12))):
        dtype = draw(st.sampled_from(TYPES))
        fields: dict[str, object] = {
            "table": "input_register",
            "address": draw(st.integers(0, 40)),
            "type": dtype,
        }
        if dtype == "bool":
            fields["bit"] = draw(st.integers(0, 15))
        else:
            fields["word_order"] = draw(st.sampled_from(["big", "little"]))
            fields["byte_order"] = draw(st.sampled_from(["big", "little"]))
            if draw(st.booleans()):
                fields["scale"] = draw(st.sampled_from([0.1, -2.0, 0.001]))
                fields["offset"] = draw(st.sampled_from([0.0, -50.0, 3.5]))
        channels[f"c{i}"] = ModbusChannel.model_validate(fields)
    return channels


@settings(max_examples=200, deadline=None)
@given(layout=layouts(), data=st.data())
def test_columns_decode_as_each_channel_does(
    layout: dict[str, ModbusChannel], data: st.DataObject
) -> None:
    entries = [(name, config, Codec(config)) for name, config in layout.items()]
    for request in plan_reads(entries, max_gap=8, max_registers=125, max_bits=2000):
        words = data.draw(
            st.lists(st.integers(0, 0xFFFF), min_size=request.count, max_size=request.count)
        )
        payload = struct.pack(f">{len(words)}H", *words)
        expected = request.decode(words, payload)
        got = ColumnDecoder.compile(request).decode(words, payload)
        assert got.dtype == np.float64
        for name, mine, theirs in zip(request.names, got.tolist(), expected, strict=True):
            if isinstance(theirs, float) and math.isnan(theirs):
                assert math.isnan(mine), name
            else:
                assert mine == float(theirs), name


@pytest.mark.parametrize(
    ("word_order", "byte_order"),
    [("big", "big"), ("little", "little"), ("little", "big"), ("big", "little")],
)
def test_a_row_of_neighbouring_floats_decodes_in_every_order(
    word_order: str, byte_order: str
) -> None:
    """ABCD and DCBA rows are read as a strided view of the reply, CDAB and BADC gathered:
    both give each channel's value, scaled."""
    fields = {"type": "float32", "word_order": word_order, "byte_order": byte_order}
    layout = {
        f"c{i}": ModbusChannel.model_validate({"address": 3 * i, **fields, "scale": 2.0})
        for i in range(40)
    }
    entries = [(name, config, Codec(config)) for name, config in layout.items()]
    values = [1.5 * i - 20.0 for i in range(40)]
    words = [0] * (3 * 40)
    for i, value in enumerate(values):
        words[3 * i : 3 * i + 2] = entries[i][2].encode(value)
    payload = struct.pack(f">{len(words)}H", *words)
    (request,) = plan_reads(entries, max_gap=8, max_registers=125, max_bits=2000)
    got = ColumnDecoder.compile(request).decode(words, payload)
    assert got.tolist() == pytest.approx(values)
    assert got.tolist() == request.decode(words, payload)


def test_bits_decode_to_zero_and_one() -> None:
    layout = {
        "a": ModbusChannel.model_validate({"table": "coil", "address": 3, "type": "bool"}),
        "b": ModbusChannel.model_validate({"table": "coil", "address": 5, "type": "bool"}),
    }
    entries = [(name, config, Codec(config)) for name, config in layout.items()]
    (request,) = plan_reads(entries, max_gap=8, max_registers=125, max_bits=2000)
    bits = [True, True, False, False, False, False, False, False]  # padded to a byte
    assert request.decode(bits) == [True, False]
    assert ColumnDecoder.compile(request).decode(bits, None).tolist() == [1.0, 0.0]


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
async def test_a_block_is_the_scan_read_gives_in_as_few_requests(
    furnace: FurnaceSimulator, transport: str
) -> None:
    hold_temperature(furnace, 321.5)
    channels = {
        **PV_CHANNELS,
        "running": {"table": "coil", "address": 0, "type": "bool", "writable": True},
        "flag": {"table": "input_register", "address": 4, "type": "bool", "bit": 1},
    }
    driver = ModbusDriver("furnace", instrument(furnace, transport, channels), DriverContext())
    names = [*channels, "pv_abcd"]  # asked twice: read once, given twice
    await driver.connect()
    try:
        start = driver.requests
        readings = await driver.read(names)
        scan_requests = driver.requests - start
        block = await driver.read_block(names)
        block_requests = driver.requests - start - scan_requests
    finally:
        await driver.close()
    # the same plan: one coil request, one for the input registers
    assert block_requests == scan_requests == 2
    assert block.channels == tuple(names)
    assert block.values.tolist() == pytest.approx([float(readings[n].value) for n in names])
    assert block.values[names.index("pv_abcd")] == pytest.approx(321.5)
    assert block.quality.tolist() == [0] * len(names)
