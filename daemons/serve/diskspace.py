"""Is there room to run? The data disk's reserve and the state database's, checked together.

A run stopped by a full disk is interrupted, not failed: the scheduler waits here until both
disks have room again, then resumes it. The check is the same the run itself would make (the
data file's free-space reserve, and the state database's reserve file written back), so a run
is not restarted only to stop again at once.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from mdfd.daemons.storage.errors import MIN_FREE_BYTES
from mdfd.daemons.store import StateDB


def _data_problem(data_dir: Path) -> str | None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        stats = os.statvfs(data_dir)
    except OSError as exc:
        return f"data directory {data_dir}: {exc}"
    free = stats.f_bavail * stats.f_frsize
    if free < MIN_FREE_BYTES:
        return (
            f"data disk {data_dir}: {free / 2**20:.0f} MiB free, below the"
            f" {MIN_FREE_BYTES / 2**20:.0f} MiB reserve"
        )
    return None


async def space_problem(data_dir: Path, state: StateDB) -> str | None:
    """Why a run could not write now (a sentence), or None when both disks have room."""
    problem = await asyncio.to_thread(_data_problem, data_dir)
    if problem is not None:
        return problem
    if not await state.restore_reserve():
        return f"state database disk full ({state.path.parent})"
    return None
