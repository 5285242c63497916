"""asyncua's standard address space from a disk cache: an OPC-UA simulator up in ~0.1 s, not ~2 s.

`asyncua.Server.init()` fills the standard OPC-UA address space (thousands of nodes) from
generated code: about a second of CPU in a worker thread, the slowest part of starting the
simulated MDF (ADR 0053). Its public `shelf_file` argument exists for this: on a first start
it fills the space as usual and also writes it to a `shelve`; later starts read nodes lazily
from that shelf. The shelf lives in a cache directory per asyncua and Python version, written
under a temporary name and renamed into place, so concurrent first starts (test workers) never
read half a shelf.

asyncua recognises an existing shelf by a file at the given path (or `path.db`); the `dbm.dumb`
backend, the only one some Python builds have, writes `path.dat` and `path.dir` instead, so an
empty file at the path marks a complete shelf there. A cache that cannot be created (a
read-only home under a sandbox) or read (corrupt) costs only the time: the server is built the
slow way, with one log line saying why.

All of it runs in a worker thread, on an event loop of its own: asyncua opens the shelf on the
loop that calls `init`, and `dbm.dumb` parses the shelf's 6,174-key index there (0.1–0.4 s), a
stall of every other task of the caller's loop — the daemon's control API, with `--simulate`
(ADR 0086). `init` starts nothing on that loop (asyncua's tasks begin with `Server.start`), so
the server it returns is started on the caller's loop.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import structlog
from asyncua import Server

CACHE_ENV = "MDFD_CACHE_DIR"
SHELF_NAME = "standard-address-space"


def cache_root() -> Path:
    """`$MDFD_CACHE_DIR`, else `$XDG_CACHE_HOME/mdfd`, else `~/.cache/mdfd`."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mdfd"


def shelf_directory() -> Path:
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    return cache_root() / f"asyncua-{version('asyncua')}-{python}"


async def initialized_server(make: Callable[[], Server]) -> Server:
    """A new server from `make()`, initialised from the cached standard address space when
    there is one, else the slow way (writing the cache for next time when it can); built in
    a worker thread so the caller's event loop keeps running meanwhile."""
    return await asyncio.to_thread(asyncio.run, _initialized(make))


async def _initialized(make: Callable[[], Server]) -> Server:
    log = structlog.get_logger().bind(component="opcua-shelf")
    try:
        directory = shelf_directory()
    except RuntimeError as exc:  # no home directory to put a cache in
        log.info("address space cache unavailable", error=str(exc))
        server = make()
        await server.init()
        return server
    if directory.is_dir():
        server = make()
        try:
            await server.init(directory / SHELF_NAME)
            return server
        except Exception as exc:
            log.warning(
                "address space cache unreadable, removed", path=str(directory), error=repr(exc)
            )
            shutil.rmtree(directory, ignore_errors=True)
    server = make()
    try:
        staging = directory.with_name(f".{directory.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        staging.mkdir(parents=True)
    except OSError as exc:
        log.info("address space cache unavailable", path=str(directory), error=str(exc))
        await server.init()
        return server
    try:
        shelf = staging / SHELF_NAME
        await server.init(shelf)
        if not shelf.exists() and not shelf.with_suffix(".db").exists():
            shelf.touch()
        staging.rename(directory)
    except OSError:
        pass  # another process put its shelf in place first; this server is filled anyway
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return server
