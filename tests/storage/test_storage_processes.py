"""The file seen from other processes: a SWMR reader while it grows, and a writer killed -9."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from storage_helpers import CHANNELS, make_run_file, parameters, sample, write_point

from mdfd.daemons.storage import read_channel, read_metadata, read_summary
from tests.support import require_tool

HERE = Path(__file__).resolve().parent
TIMEOUT = 30.0


async def spawn(script: str, *args: str) -> asyncio.subprocess.Process:
    """Run a helper script of this folder (which Python puts first on its import path)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / script),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    text = await asyncio.wait_for(process.stdout.readline(), TIMEOUT)
    if not text:
        assert process.stderr is not None
        error = await asyncio.wait_for(process.stderr.read(), TIMEOUT)
        pytest.fail(f"child ended early: {error.decode()}")
    return text.decode().strip()


async def finish(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
    await asyncio.wait_for(process.communicate(), TIMEOUT)


async def test_another_process_reads_the_file_while_it_grows(tmp_path: Path) -> None:
    path = tmp_path / "run-1.h5"
    run = make_run_file(path)
    await run.open()
    await write_point(run, 0, samples=5)
    reader = await spawn("swmr_reader.py", str(path))
    try:
        assert await line(reader) == "open"
        seen = []
        for point in range(1, 5):
            await write_point(run, point, samples=5)
            assert reader.stdin is not None
            reader.stdin.write(b"?\n")
            await reader.stdin.drain()
            seen.append(json.loads(await line(reader)))
        await run.close("completed")
        reader.stdin.write(b"?\n")
        await reader.stdin.drain()
        after_close = json.loads(await line(reader))
    finally:
        await finish(reader)
        await run.close("failed")
    assert [answer["points"] for answer in seen] == [2, 3, 4, 5]
    for answer in seen:
        count = answer["points"]
        assert answer["temperature"] == [parameters(p)["temperature"] for p in range(count)]
        assert answer["samples"] == [sample(1, p, i)[1] for p in range(count) for i in range(5)]
    assert after_close["points"] == 5


def tool(*argv: str) -> subprocess.CompletedProcess[str]:
    executable = require_tool(argv[0], "hdf5-tools")
    return subprocess.run(
        [executable, *argv[1:]], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


@pytest.mark.parametrize("mode", ["mid-point", "busy"])
async def test_killed_writer_resumes_at_its_checkpoint(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "run-1.h5"
    writer = await spawn("crash_writer.py", str(path), mode)
    checkpoint: dict = {"points": 0, "rows": {}}
    try:
        while True:
            text = await line(writer)
            if text == "half":
                break
            checkpoint = json.loads(text)
            if mode == "busy" and checkpoint["points"] >= 6:
                break
        writer.send_signal(signal.SIGKILL)
        await asyncio.wait_for(writer.wait(), TIMEOUT)
    finally:
        await finish(writer)
    assert writer.returncode == -signal.SIGKILL
    refused = tool("h5dump", "-H", str(path))
    assert refused.returncode != 0  # the dead SWMR writer's flags stop HDF5 1.10's tools

    done = checkpoint["points"]
    run = make_run_file(path)
    await run.open(resume_rows=checkpoint["rows"], resume_points=done)
    assert read_summary(path).rows == done
    assert (
        len(read_channel(path, "furnace.temperature").value)
        == checkpoint["rows"]["furnace.temperature"]
    )
    for point in range(done, done + 3):
        await write_point(run, point, samples=21)
    await run.close("completed")

    total = done + 3
    summary = read_summary(path)
    assert summary.columns["point_index"].tolist() == list(range(total))
    for number, spec in enumerate(CHANNELS):
        data = read_channel(path, spec.name)
        assert data.value.tolist() == [
            sample(number, p, i)[1] for p in range(total) for i in range(21)
        ]
        assert data.point_index.tolist() == [p for p in range(total) for _ in range(21)]
    assert read_metadata(path)["resume_count"] == 1
    assert read_metadata(path)["status"] == "completed"

    header = tool("h5dump", "-H", str(path))
    assert header.returncode == 0, header.stderr
    assert "furnace__temperature_mean" in header.stdout
    listing = tool("h5ls", "-r", str(path))
    assert listing.returncode == 0, listing.stderr
    assert f"/entry/summary/point_index Dataset {{{total}/Inf}}" in listing.stdout
    values = tool("h5dump", "-d", "/entry/summary/point_index", str(path))
    assert values.returncode == 0, values.stderr
    assert f"(0): {', '.join(str(p) for p in range(total))}" in values.stdout


async def test_a_full_disk_fails_cleanly_and_the_run_resumes_later(tmp_path: Path) -> None:
    path = tmp_path / "run-1.h5"
    writer = await spawn("full_disk_writer.py", str(path))
    try:
        outcome = json.loads(await line(writer))
        await asyncio.wait_for(writer.wait(), TIMEOUT)
    finally:
        await finish(writer)
    assert writer.returncode == 0  # no segmentation fault while giving the file up
    assert 0 < outcome["done"] < 1000
    assert "run-1.h5" in outcome["error"]
    assert "File too large" in outcome["error"]
    assert outcome["threads"] == []  # the writer thread ended although the disk is full

    done = outcome["done"]  # space freed: resume at the checkpoint and finish the run
    run = make_run_file(path, block_size=512, compression=None)
    await run.open(resume_rows=outcome["rows"], resume_points=done)
    await write_point(run, done, samples=2000)
    await run.close("completed")
    values = read_channel(path, "meter.capacitance").value.tolist()
    assert values == [sample(1, p, i)[1] for p in range(done + 1) for i in range(2000)]
    assert read_summary(path).columns["point_index"].tolist() == list(range(done + 1))
    assert tool("h5dump", "-H", str(path)).returncode == 0
