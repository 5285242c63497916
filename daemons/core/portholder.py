"""Who listens on a TCP port, read from /proc: best effort, for an error an operator acts on.

"Port 15020 is in use" sends the operator hunting; "in use by pid 4242 (mdfd sim ...)" usually
ends the hunt (often it is a forgotten simulator or daemon of their own).
"""

from __future__ import annotations

import os
from pathlib import Path

LISTEN = "0A"  # the state column of /proc/net/tcp for a listening socket
PROC = Path("/proc")


def port_holder(port: int) -> str | None:
    """`pid 4242 (mdfd sim --config ...)` for the process listening on `port`, or "a process
    of another user" when only root could say which (it alone reads every process's file
    descriptors). None when /proc shows no listener (a socket bound but not listening) or
    there is no /proc."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for process in PROC.iterdir():
        if not process.name.isdigit():
            continue
        try:
            descriptors = list((process / "fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(descriptor)
            except OSError:
                continue
            if target in wanted:
                return f"pid {process.name} ({_command(process)})"
    return "a process of another user"


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and int(local.rpartition(":")[2], 16) == port:
                inodes.add(inode)
    return inodes


def _command(process: Path, limit: int = 80) -> str:
    try:
        argv = (process / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    command = " ".join(part.decode(errors="replace") for part in argv if part)
    return command if len(command) <= limit else command[: limit - 3] + "..."
