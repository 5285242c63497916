"""One process per MDF: an exclusive lock on the state directory.

Two daemons (or a daemon and a one-shot `mdfd run`) driving the same furnace would fight over
its setpoint; the second one is refused with the holder's PID before it touches anything.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from mdfd.recipes.located import InputError, Problem


class StateLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "mdfd.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InputError(
                [
                    Problem(
                        str(self.path),
                        None,
                        "storage.state_dir",
                        f"another mdfd process (pid {holder}) holds this MDF",
                    )
                ]
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
