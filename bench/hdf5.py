"""Streaming samples into HDF5: RunFile against raw h5py, and memory over a long stream.

Throughput: the same samples (4 channels round-robin) go through `RunFile.add_sample` (buffers,
bounded queue, writer thread, SWMR, a summary row + flush + fsync per point) and through the
plainest synchronous h5py code writing the same layout in the same blocks (per-sample appends to
array buffers, one write per block, flush + fsync per point, same chunks and gzip): once with
h5py's usual `resize` + slice assignment, once with the low-level dataset-id calls RunFile itself
uses. All run in this process, interleaved, so the machine's mood affects all alike.
Target: >= 0.8 of each.

Memory: one long stream through RunFile; the peak RSS (VmHWM) after half of it and after all
of it. A bounded pipeline has the same peak at both; ratio ~1.0 means it does not grow.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import tempfile
import time
from array import array
from pathlib import Path

import h5py
import numpy as np
from h5py import h5s

from bench.common import Figure, arguments, report
from mdfd.daemons.logging import configure
from mdfd.daemons.stats import Stats
from mdfd.daemons.storage import ChannelSpec, RunFile
from mdfd.daemons.storage.layout import LIBVER

CHANNELS = [ChannelSpec(f"meter.ch{i}", "V") for i in range(4)]
BLOCK = 4096
POINT = 100_000  # samples per point (all channels together)
T0 = 1_700_000_000.0


def values(count: int) -> list[float]:
    rng = np.random.default_rng(7)
    return (np.sin(np.arange(count) / 500.0) + rng.normal(0, 0.01, count)).tolist()


async def through_runfile(path: Path, data: list[float]) -> float:
    run = RunFile(
        path, metadata={"run_id": "bench"}, channels=CHANNELS, parameters=["x"], block_size=BLOCK
    )
    await run.open()
    names = [c.name for c in CHANNELS]
    nch = len(names)
    add = run.add_sample
    began = time.perf_counter()
    point = 0
    for i, value in enumerate(data):
        if add(names[i % nch], T0 + i * 1e-3, value, point):
            await run.drain()
        if (i + 1) % POINT == 0:
            stats = {n: Stats(0.0, 0.0, 0.0, 0.0, 1) for n in names}
            await run.complete_point(point, {"x": float(point)}, stats, T0, T0)
            point += 1
    await run.close("completed")
    return len(data) / (time.perf_counter() - began)


def through_raw_h5py(path: Path, data: list[float], low_level: bool = False) -> float:
    """The plainest synchronous writer; `low_level` uses dataset ids instead of slicing."""
    handle = h5py.File(path, "w", libver=LIBVER, rdcc_nbytes=1 << 18)
    series = []
    for spec in CHANNELS:
        group = handle.create_group(f"entry/instrument/meter/{spec.short}")
        series.append(
            [
                group.create_dataset(
                    name,
                    shape=(0,),
                    maxshape=(None,),
                    chunks=(BLOCK,),
                    dtype=dt,
                    compression="gzip",
                    compression_opts=1,
                    shuffle=True,
                )
                for name, dt in (("time", "f8"), ("value", "f8"), ("point_index", "i8"))
            ]
        )
    handle.swmr_mode = True
    buffers = [(array("d"), array("d"), array("q")) for _ in CHANNELS]
    rows = [0] * len(CHANNELS)
    fd = handle.id.get_vfd_handle()

    def write(channel: int) -> None:
        times, vals, points = buffers[channel]
        start, end = rows[channel], rows[channel] + len(times)
        for dataset, buf, dtype in zip(
            series[channel], buffers[channel], ("f8", "f8", "i8"), strict=True
        ):
            block = np.frombuffer(buf, dtype=dtype)
            if low_level:
                dataset.id.set_extent((end,))
                space = dataset.id.get_space()
                space.select_hyperslab((start,), (end - start,))
                dataset.id.write(h5s.create_simple((end - start,)), space, block)
            else:
                dataset.resize((end,))
                dataset[start:end] = block
            del block  # release the buffer so the array can be emptied
        rows[channel] = end
        del times[:], vals[:], points[:]

    nch = len(CHANNELS)
    began = time.perf_counter()
    point = 0
    for i, value in enumerate(data):
        channel = i % nch
        times, vals, points = buffers[channel]
        times.append(T0 + i * 1e-3)
        vals.append(value)
        points.append(point)
        if len(times) >= BLOCK:
            write(channel)
        if (i + 1) % POINT == 0:
            for c in range(nch):
                if buffers[c][0]:
                    write(c)
            handle.flush()
            os.fsync(fd)
            point += 1
    handle.close()
    return len(data) / (time.perf_counter() - began)


def peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


async def long_stream(path: Path, total: int) -> tuple[float, float]:
    """Peak RSS after half of the stream and after all of it (values made on the fly)."""
    run = RunFile(path, metadata={"run_id": "long"}, channels=CHANNELS, parameters=["x"])
    await run.open()
    names = [c.name for c in CHANNELS]
    half = 0.0
    point = 0
    chunk = np.sin(np.arange(POINT) / 500.0).tolist()
    for i in range(total):
        if run.add_sample(names[i % 4], T0 + i * 1e-3, chunk[i % POINT], point):
            await run.drain()
        if (i + 1) % POINT == 0:
            await run.complete_point(point, {"x": float(point)}, {}, T0, T0)
            point += 1
        if i + 1 == total // 2:
            half = peak_rss_mb()
    await run.close("completed")
    return half, peak_rss_mb()


def measure_long_stream(path: Path, total: int) -> tuple[float, float]:
    configure("warning")
    return asyncio.run(long_stream(path, total))


def run(quick: bool = False) -> list[Figure]:
    count = 400_000 if quick else 2_000_000
    total = 1_000_000 if quick else 10_000_000
    data = values(count)
    ours, raw, low = [], [], []
    with tempfile.TemporaryDirectory(prefix="mdfd-bench-hdf5-") as tmp:
        for attempt in range(5):  # interleaved, in a rotating order
            order = ["ours", "raw", "low"]
            for kind in order[attempt % 3 :] + order[: attempt % 3]:
                path = Path(tmp) / f"{kind}{attempt}.h5"
                if kind == "ours":
                    ours.append(asyncio.run(through_runfile(path, data)))
                else:
                    figure = raw if kind == "raw" else low
                    figure.append(through_raw_h5py(path, data, low_level=kind == "low"))
        del data
        # A fresh process: its peak RSS is the stream's alone, not the throughput runs'.
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
            half, whole = pool.submit(measure_long_stream, Path(tmp) / "long.h5", total).result()
    return [
        Figure(
            name="RunFile samples/s",
            unit="samples/s",
            samples=ours,
            baseline_name="raw h5py, same layout and blocks",
            baseline_samples=raw,
            target_ratio=0.8,
            note=f"{count:,} samples, 4 channels, blocks of {BLOCK}, gzip-1+shuffle, "
            f"fsync per {POINT:,}-sample point; baseline: resize + slice assignment",
        ),
        Figure(
            name="RunFile samples/s",
            unit="samples/s",
            samples=ours,
            baseline_name="raw h5py low-level (dataset ids), same layout and blocks",
            baseline_samples=low,
            target_ratio=0.8,
            note="the same HDF5 calls RunFile's writer thread makes, minus the thread",
        ),
        Figure(
            name=f"peak RSS after {total:,} samples",
            unit="MB",
            samples=[whole],
            baseline_name=f"after {total // 2:,}",
            baseline_samples=[half],
            higher_is_better=False,
            note="ratio ~1.0: memory does not grow with run length",
        ),
    ]


def main() -> None:
    configure("warning")
    parser = arguments(__doc__)
    args = parser.parse_args()
    report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    main()
