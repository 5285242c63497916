"""One process per MDF: an exclusive lock on the state directory, and one daemon per runtime
directory: a lock beside its control socket.

Two daemons (or a daemon and a one-shot `mdfd run`) driving the same furnace would fight over
its setpoint; two daemons sharing a runtime directory would take over each other's control
socket. The second one is refused, naming the holder (pid and command line), before it
touches anything. The holder is written into the lock file because the lock itself (flock)
says only that someone holds it, not who.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

from mdfd.recipes.located import InputError, Problem

STATE_LOCK = "mdfd.lock"
# Not `mdfd.lock`: with no runtime_dir the runtime directory *is* the state directory, and a
# second flock on the same file by the same process would refuse itself.
RUNTIME_LOCK = "control.lock"
HOLDER_BYTES = 4096


class DirectoryLock:
    """flock(LOCK_EX | LOCK_NB) on `directory/name`; released when the process dies."""

    def __init__(self, directory: Path, name: str, field: str, held_by_other: str) -> None:
        self.path = directory / name
        self._field = field
        self._held_by_other = held_by_other
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.read(fd, HOLDER_BYTES))
            os.close(fd)
            raise InputError(
                [Problem(str(self.path), None, self._field, f"{self._held_by_other} ({holder})")]
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{_command_line()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class StateLock(DirectoryLock):
    """The MDF itself: whoever holds it may move its instruments."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(
            state_dir, STATE_LOCK, "storage.state_dir", "another mdfd process holds this MDF"
        )


class RuntimeLock(DirectoryLock):
    """The runtime directory of one daemon: its control socket is this daemon's alone."""

    def __init__(self, runtime_dir: Path) -> None:
        super().__init__(
            runtime_dir,
            RUNTIME_LOCK,
            "storage.runtime_dir",
            "another mdfd daemon serves its control socket in this runtime directory",
        )


def _command_line() -> str:
    return " ".join(["mdfd", *sys.argv[1:]]) if sys.argv else "mdfd"


def _describe(content: bytes) -> str:
    """'pid 123, command: mdfd serve --config …' from what the holder wrote."""
    lines = content.decode(errors="replace").splitlines()
    pid = lines[0].strip() if lines and lines[0].strip() else "unknown"
    command = lines[1].strip() if len(lines) > 1 else ""
    return f"pid {pid}, command: {command}" if command else f"pid {pid}"
