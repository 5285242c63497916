"""A writer process whose files may not grow past 256 KiB (RLIMIT_FSIZE): a real full disk.

Writes points until storage fails, then closes; prints what the engine would have seen. HDF5
crashes a process that closes a SWMR file after a failed flush unless RunFile takes care, so
this process exiting normally is part of what is tested.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import sys
import threading
from pathlib import Path

from storage_helpers import make_run_file, write_point

from mdfd.daemons.storage import StorageError


async def main(path: Path) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
    run = make_run_file(path, block_size=512, compression=None)
    await run.open()
    done, rows, error = 0, {}, ""
    try:
        for point in range(1000):
            rows = await write_point(run, point, samples=2000)
            done = point + 1
    except StorageError as exc:
        error = str(exc)
    try:
        await run.close("failed")
        closed = "closed"
    except StorageError as exc:
        closed = f"close raised: {exc}"
    writers = [t.name for t in threading.enumerate() if t.name.startswith("mdfd-hdf5")]
    outcome = {"done": done, "rows": rows, "error": error, "closed": closed, "threads": writers}
    print(json.dumps(outcome))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
