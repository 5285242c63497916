"""Interoperability with code nobody here wrote, both ways: the driver against pymodbus's own
server with a plain datastore, and plain pymodbus client code against the furnace simulator."""

from __future__ import annotations

import asyncio
import inspect
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from modbus_support import hold_temperature
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from mdfd.drivers import DriverContext
from mdfd.drivers.modbus import ModbusDriver, ModbusInstrument
from mdfd.simulators.furnace import FurnaceSimulator
from mdfd.simulators.nullmodem import NullModem

FLOAT = AsyncModbusTcpClient.DATATYPE.FLOAT32

PLAIN_CHANNELS: dict[str, dict[str, Any]] = {
    "f0": {"address": 0, "type": "float32", "writable": True},
    "f1": {"address": 2, "type": "float32", "writable": True},
    "i32": {"address": 4, "type": "int32", "writable": True},
    "u16": {"address": 6, "type": "uint16", "writable": True},
    "d64": {"address": 8, "type": "float64", "writable": True},
    "ir": {"table": "input_register", "address": 0, "type": "int16"},
    "coil": {"table": "coil", "address": 5, "type": "bool", "writable": True},
    "di": {"table": "discrete_input", "address": 2, "type": "bool"},
}


def plain_device() -> SimDevice:
    """A datastore as pymodbus's documentation builds it, values typed by pymodbus."""
    return SimDevice(
        1,
        simdata=(
            [SimData(0, values=[False] * 5 + [True] + [False] * 10, datatype=DataType.BITS)],
            [SimData(0, values=[False, False, True] + [False] * 13, datatype=DataType.BITS)],
            [
                SimData(0, values=[1.5, -2.25], datatype=DataType.FLOAT32),
                SimData(4, values=-100000, datatype=DataType.INT32),
                SimData(6, values=4242, datatype=DataType.UINT16),
                SimData(7, values=0, datatype=DataType.REGISTERS),
                SimData(8, values=6.02e23, datatype=DataType.FLOAT64),
            ],
            [SimData(0, values=-7, datatype=DataType.INT16)],
        ),
    )


@pytest.fixture(params=["tcp", "rtu"])
async def plain_server(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    if request.param == "tcp":
        server = ModbusTcpServer(plain_device(), address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        port = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        try:
            yield {"type": "tcp", "host": "127.0.0.1", "port": port}
        finally:
            await server.shutdown()
        return
    modem = NullModem()
    modem.open()
    server = ModbusSerialServer(plain_device(), port=modem.server_path)
    await server.serve_forever(background=True)
    try:
        yield {"type": "rtu", "device": modem.client_path}
    finally:
        await server.shutdown()
        modem.close()


async def test_driver_reads_and_writes_a_plain_pymodbus_server(
    plain_server: dict[str, Any],
) -> None:
    config = ModbusInstrument.model_validate(
        {"driver": "modbus", "link": plain_server, "timeout": 1.0, "channels": PLAIN_CHANNELS}
    )
    driver = ModbusDriver("plain", config, DriverContext())
    await driver.connect()
    try:
        values = {k: r.value for k, r in (await driver.read(list(PLAIN_CHANNELS))).items()}
        assert values == {
            "f0": 1.5,
            "f1": -2.25,
            "i32": -100000,
            "u16": 4242,
            "d64": pytest.approx(6.02e23),
            "ir": -7,
            "coil": True,
            "di": True,
        }
        await driver.write("f1", 98.5)
        await driver.write("i32", 123456)
        await driver.write("d64", -1.25)
        await driver.write("coil", False)
        # pymodbus keeps device identification process-wide: whatever an earlier server in
        # this process declared (or the driver's fallback) — but always an answer
        assert await driver.identify()
    finally:
        await driver.close()

    client = (
        AsyncModbusTcpClient(plain_server["host"], port=plain_server["port"], timeout=1)
        if plain_server["type"] == "tcp"
        else AsyncModbusSerialClient(plain_server["device"], timeout=1)
    )
    await client.connect()
    try:
        registers = (await client.read_holding_registers(0, count=12, device_id=1)).registers
        coils = (await client.read_coils(5, count=1, device_id=1)).bits
    finally:
        client.close()
    convert = AsyncModbusTcpClient.convert_from_registers
    assert convert(registers[2:4], FLOAT) == 98.5
    assert convert(registers[4:6], AsyncModbusTcpClient.DATATYPE.INT32) == 123456
    assert convert(registers[8:12], AsyncModbusTcpClient.DATATYPE.FLOAT64) == -1.25
    assert coils[0] is False


async def test_plain_pymodbus_client_drives_the_furnace_over_tcp(
    furnace: FurnaceSimulator,
) -> None:
    hold_temperature(furnace, 456.75)
    client = AsyncModbusTcpClient("127.0.0.1", port=furnace.tcp_port, timeout=1)
    await client.connect()
    try:
        pv = await client.read_input_registers(10, count=2, device_id=1)
        assert client.convert_from_registers(pv.registers, FLOAT) == pytest.approx(456.75)
        cdab = await client.read_input_registers(20, count=2, device_id=1)
        assert client.convert_from_registers(
            cdab.registers, FLOAT, word_order="little"
        ) == pytest.approx(456.75)
        scaled = await client.read_input_registers(0, count=1, device_id=1)
        assert scaled.registers == [4568]
        written = await client.write_registers(
            10, client.convert_to_registers(640.0, FLOAT), device_id=1
        )
        assert not written.isError()
        assert furnace.world.zone.setpoint == 640.0
        assert (await client.write_coil(0, True, device_id=1)).isError() is False
        assert (await client.read_coils(0, count=1, device_id=1)).bits[0] is True
        info = await client.read_device_information(device_id=1)
        assert info.information[0] == b"mdfd-sim"
    finally:
        client.close()


async def test_plain_pymodbus_client_reads_the_furnace_over_the_pty(
    furnace: FurnaceSimulator,
) -> None:
    hold_temperature(furnace, 77.5)
    client = AsyncModbusSerialClient(furnace.endpoints()["rtu"], baudrate=19200, timeout=1)
    await client.connect()
    try:
        pv = await client.read_input_registers(26, count=4, device_id=1)
        value = client.convert_from_registers(pv.registers, AsyncModbusTcpClient.DATATYPE.FLOAT64)
        assert value == pytest.approx(77.5)
        refused = await client.write_register(0, 20000, device_id=1)  # 2000.0 degC: too hot
        assert refused.isError()
        assert refused.exception_code == 3
    finally:
        client.close()


async def test_noise_on_an_rtu_line_before_a_request_is_dropped() -> None:
    """RTU has no transaction ids: bytes that arrive between requests (noise, the start of a
    frame that never ends) are dropped once the line is silent, so the reply that follows is
    read from its first byte."""
    modem = NullModem()
    modem.open()
    server = ModbusSerialServer(plain_device(), port=modem.server_path)
    await server.serve_forever(background=True)
    line = os.open(modem.server_path, os.O_WRONLY | os.O_NOCTTY)
    config = ModbusInstrument.model_validate(
        {
            "driver": "modbus",
            "link": {"type": "rtu", "device": modem.client_path},
            "timeout": 1.0,
            "channels": PLAIN_CHANNELS,
        }
    )
    driver = ModbusDriver("plain", config, DriverContext())
    try:
        await driver.connect()
        for _ in range(3):
            os.write(line, b"\x01\x03\xff\x00")  # unit 1, function 3, 255 bytes to come...
            await asyncio.sleep(0.1)  # ...delivered to the driver's side of the line
            readings = await driver.read(["f0", "u16"])
            assert {k: r.value for k, r in readings.items()} == {"f0": 1.5, "u16": 4242}
    finally:
        await driver.close()
        os.close(line)
        await server.shutdown()
        modem.close()


def test_the_driver_uses_no_pymodbus_client_internals() -> None:
    """pymodbus is used for frames and PDUs through its public API; its client's private state
    (`client.ctx`, `comm_params`, `recv_buffer`, `response_future`) pinned it to one minor
    version."""
    sources = sorted(Path(inspect.getfile(ModbusDriver)).parent.glob("*.py"))
    assert sources
    private = re.compile(r"\.ctx\b|comm_params|recv_buffer|response_future|pymodbus\.\w*\._")
    found = [
        f"{source.name}:{number}: {line.strip()}"
        for source in sources
        for number, line in enumerate(source.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert found == []
