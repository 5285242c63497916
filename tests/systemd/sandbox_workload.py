"""What mdfd does at run time, in one process: run under `sandbox.py` by test_sandbox.py.

Each step touches a facility the unit restricts (system calls, W^X memory, sockets, ptys,
threads) through the same libraries the daemon uses. Prints `ok` when everything worked, or
`sandbox-active` for `--controls`, which checks that the restrictions really apply.
"""

from __future__ import annotations

import asyncio
import ctypes
import mmap
import os
import socket
import sqlite3
import sys
import tempfile
from pathlib import Path


def controls() -> None:
    """Calls that succeed for any user unsandboxed and must fail inside."""
    try:
        os.setresuid(-1, -1, -1)  # @privileged: a no-op for anyone, refused by the filter
    except PermissionError:
        pass
    else:
        raise SystemExit("setresuid was allowed: no system-call filter")
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)  # RestrictAddressFamilies=
    except OSError:
        pass
    else:
        raise SystemExit("a netlink socket was allowed: no address-family restriction")
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except OSError:
        pass
    else:
        raise SystemExit("a writable+executable mapping was allowed: no MDWE")
    print("sandbox-active")


def storage(directory: Path) -> None:
    import h5py
    import numpy as np

    with h5py.File(directory / "run.h5", "w", libver="latest") as f:
        data = f.create_dataset("v", shape=(0,), maxshape=(None,), chunks=(64,), dtype="f8")
        f.swmr_mode = True
        for block in range(3):
            values = np.linspace(0, 1, 100) @ np.ones((100, 100)) + block
            data.resize((data.shape[0] + 100,))
            data[-100:] = values
            data.flush()
    with h5py.File(directory / "run.h5", "r", libver="latest", swmr=True) as f:
        assert f["v"].shape == (300,)
    db = sqlite3.connect(directory / "state.db")
    assert db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    with db:
        db.execute("CREATE TABLE t (x)")
        db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
    assert db.execute("SELECT sum(x) FROM t").fetchone()[0] == 4950
    db.close()


def native_code() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signature = key.sign(b"opc-ua", padding.PKCS1v15(), hashes.SHA256())
    key.public_key().verify(signature, b"opc-ua", padding.PKCS1v15(), hashes.SHA256())
    # A ctypes callback needs an executable trampoline from libffi.
    compare = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(
        lambda a, b: (
            ctypes.cast(a, ctypes.POINTER(ctypes.c_int))[0]
            - ctypes.cast(b, ctypes.POINTER(ctypes.c_int))[0]
        )
    )
    numbers = (ctypes.c_int * 4)(3, 1, 4, 2)
    ctypes.CDLL(None).qsort(numbers, 4, ctypes.sizeof(ctypes.c_int), compare)
    assert list(numbers) == [1, 2, 3, 4]


async def sockets_and_ptys(directory: Path) -> None:
    import serial

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    # Name resolution as aiohttp does it (AI_ADDRCONFIG asks glibc about interfaces, which it
    # would do over netlink, a family the unit forbids: glibc must cope).
    found = await asyncio.get_running_loop().getaddrinfo(
        "localhost", 80, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
    )
    assert found
    unix = await asyncio.start_unix_server(echo, path=str(directory / "control.sock"))
    tcp = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with unix, tcp:
        for opened in (
            asyncio.open_unix_connection(str(directory / "control.sock")),
            asyncio.open_connection("127.0.0.1", tcp.sockets[0].getsockname()[1]),
        ):
            reader, writer = await asyncio.wait_for(opened, 10)
            writer.write(b"ping\n")
            assert await asyncio.wait_for(reader.readline(), 10) == b"ping\n"
            writer.close()
            await writer.wait_closed()

    controller, device = os.openpty()
    try:
        port = serial.Serial(os.ttyname(device), baudrate=19200, parity="E", timeout=5)
        with port:
            port.write(b"\x01\x03\x00\x00\x00\x01")
            assert os.read(controller, 6) == b"\x01\x03\x00\x00\x00\x01"
            os.write(controller, b"\x01\x03\x02")
            assert port.read(3) == b"\x01\x03\x02"
    finally:
        os.close(controller)
        os.close(device)
    assert await asyncio.to_thread(sum, range(10)) == 45


def main() -> None:
    if sys.argv[1:] == ["--controls"]:
        controls()
        return
    import aiohttp  # noqa: F401
    import asyncua  # noqa: F401
    import pymodbus.client  # noqa: F401
    import pyvisa  # noqa: F401
    import structlog  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        storage(Path(tmp))
        native_code()
        asyncio.run(sockets_and_ptys(Path(tmp)))
    print("ok")


if __name__ == "__main__":
    main()
