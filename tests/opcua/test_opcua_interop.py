"""Interoperability with code nobody here wrote: asyncua's own command-line tools read our
simulator, and our driver works a plain asyncua server built like the library's example."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid

import pytest
from asyncua import Server, ua
from opcua_support import instrument

from mdfd.drivers import DriverContext
from mdfd.drivers.opcua import OpcUaDriver
from tests.support import free_port

EXAMPLE_URI = "http://examples.freeopcua.github.io"
GUID = uuid.UUID("09087e75-8e5e-499b-954f-f2a9603db28a")


async def _tool(*args: str) -> str:
    # asyncua's console scripts sit next to this interpreter, whether or not its venv is active
    scripts = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    executable = shutil.which(args[0], path=scripts)
    assert executable is not None, f"{args[0]} is installed with asyncua"
    process = await asyncio.create_subprocess_exec(
        executable,
        *args[1:],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def test_uaread_and_uals_read_the_simulator(driver: OpcUaDriver, reactor_url: str) -> None:
    await driver.write("ph_sp", 4.25)
    value = await _tool("uaread", "-u", reactor_url, "-n", "ns=2;s=Bath.pHSetpoint")
    assert value.strip().splitlines()[-1] == "4.25"
    listing = await _tool("uals", "-u", reactor_url, "-l", "1", "-n", "ns=2;s=Analyser")
    for node in ("ns=2;s=Analyser.Conversion", "ns=2;s=Analyser.Selectivity"):
        assert node in listing
    await driver.write("ph_sp", 7.0)


async def test_driver_works_a_plain_asyncua_example_server() -> None:
    # Built as asyncua's examples/server-minimal.py builds its server, plus one GUID node.
    server = Server()
    await server.init()
    url = f"opc.tcp://127.0.0.1:{free_port()}/freeopcua/server/"
    server.set_endpoint(url)
    idx = await server.register_namespace(EXAMPLE_URI)
    myobj = await server.nodes.objects.add_object(idx, "MyObject")
    myvar = await myobj.add_variable(idx, "MyVariable", 6.7)
    await myvar.set_writable()
    counter = await myobj.add_variable(
        ua.NodeId(GUID, idx), "MyCounter", ua.Variant(5, ua.VariantType.UInt16)
    )
    await counter.set_writable()
    async with server:
        browser = OpcUaDriver(
            "example",
            instrument(url, namespace=None, channels={"status": {"node": "i=2259"}}),
            DriverContext(),
        )
        await browser.connect()
        try:
            found = {entry.path: entry for entry in await browser.browse()}
            identity = await browser.identify()
        finally:
            await browser.close()
        assert identity.startswith("FreeOpcUa,FreeOpcUa Python Server")
        variable = found["MyObject/MyVariable"]
        assert variable.node.startswith(f"nsu={EXAMPLE_URI};i=")
        assert variable.value == pytest.approx(6.7)
        assert found["MyObject/MyCounter"].node == f"nsu={EXAMPLE_URI};g={GUID}"
        channels = {
            "variable": {"node": variable.node, "writable": True},
            "counter": {"node": f"ns={idx};g={GUID}", "writable": True},
            "state": {"node": "i=2259"},  # Server_ServerStatus_State, namespace 0
        }
        config = instrument(url, namespace=None, channels=channels)
        opcua = OpcUaDriver("example", config, DriverContext())
        await opcua.connect()
        try:
            await opcua.write("variable", 7)
            await opcua.write("counter", 6.0)
            readings = await opcua.read(["variable", "counter", "state"])
        finally:
            await opcua.close()
    assert readings["variable"].value == 7.0
    assert readings["counter"].value == 6
    assert readings["state"].value == 0  # ServerState.Running
