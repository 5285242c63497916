"""A writer process for the crash tests, killed -9 by the test at a moment of its choosing.

usage: crash_writer.py PATH MODE
  mid-point  three complete points, then half a point's samples reach the writer; prints
             "half" and waits to be killed.
  busy       points back to back forever, so the kill lands anywhere, often inside a flush.
After each point it prints the rows per channel on disk (what the engine would checkpoint).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from storage_helpers import add_point_samples, make_run_file, write_point


async def main(path: Path, mode: str) -> None:
    run = make_run_file(path)
    await run.open()
    point = 0
    while mode == "busy" or point < 3:
        rows = await write_point(run, point, samples=21)
        print(json.dumps({"points": point + 1, "rows": rows}), flush=True)
        point += 1
    add_point_samples(run, point, samples=17)
    await run.drain()
    print("half", flush=True)
    await asyncio.sleep(120)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
