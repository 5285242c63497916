"""Streaming samples into HDF5: RunFile against raw h5py, and memory over a long stream.

Throughput: the same samples (scans of 4 channels of one instrument) go through
`RunFile.add_scan` (a row per scan, bounded queue, writer thread, SWMR, a summary row + flush +
fsync per point) and through the plainest synchronous h5py code writing the same layout in the
same blocks (each scan copied into a block of rows, one write per block, flush + fsync per
point, same chunks and gzip): once with
h5py's usual `resize` + slice assignment, once with the low-level dataset-id calls RunFile itself
uses. All run in this process, interleaved, so the machine's mood affects all alike.
Target: >= 0.8 of each.

Creation: a run file for 1,000 and 10,000 channels (`bench.hdf5_create`).

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
from pathlib import Path

import h5py
import numpy as np
from h5py import h5s

from bench.common import Figure, arguments, report
from bench.hdf5_create import creation_figures
from mdfd.daemons.core.logging import configure
from mdfd.daemons.core.stats import Stats
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
    scans = np.asarray(data).reshape(-1, nch)
    add = run.add_scan
    began = time.perf_counter()
    point = 0
    for i in range(scans.shape[0]):
        if add("meter", names, T0 + i * 1e-3, scans[i], point):
            await run.drain()
        if (i + 1) * nch % POINT == 0:
            stats = {n: Stats(0.0, 0.0, 0.0, 0.0, 1) for n in names}
            await run.complete_point(point, {"x": float(point)}, stats, T0, T0)
            point += 1
    await run.close("completed")
    return len(data) / (time.perf_counter() - began)


def through_raw_h5py(path: Path, data: list[float], low_level: bool = False) -> float:
    """The plainest synchronous writer of the same layout (one instrument's scans as rows of
    `value[scans, 4]`, with time, point_index and sampled); `low_level` uses dataset ids
    instead of slicing."""
    handle = h5py.File(path, "w", libver=LIBVER, rdcc_nbytes=1 << 18)
    group = handle.create_group("entry/instrument/meter/data")
    nch = len(CHANNELS)
    rows = BLOCK // nch
    shapes = (("time", "f8", ()), ("value", "f8", (nch,)), ("point_index", "i8", ()))
    datasets = [
        group.create_dataset(
            name,
            shape=(0, *width),
            maxshape=(None, *width),
            chunks=(rows, *width),
            dtype=dt,
            compression="gzip",
            compression_opts=1,
            shuffle=True,
        )
        for name, dt, width in (*shapes, ("sampled", "u1", (nch,)))
    ]
    handle.swmr_mode = True
    times, vals, points = np.empty(rows), np.empty((rows, nch)), np.empty(rows, np.int64)
    sampled = np.ones((rows, nch), dtype="u1")
    filled = written = 0
    fd = handle.id.get_vfd_handle()

    def write() -> None:
        nonlocal written, filled
        count = filled
        blocks = [times[:count], vals[:count], points[:count], sampled[:count]]
        end = written + count
        for dataset, block in zip(datasets, blocks, strict=True):
            if low_level:
                dataset.id.set_extent((end, *block.shape[1:]))
                space = dataset.id.get_space()
                space.select_hyperslab((written, *(0 for _ in block.shape[1:])), block.shape)
                dataset.id.write(h5s.create_simple(block.shape), space, block)
            else:
                dataset.resize(end, axis=0)
                dataset[written:end] = block
        written, filled = end, 0

    scans = np.asarray(data).reshape(-1, nch)
    began = time.perf_counter()
    point = 0
    for i in range(scans.shape[0]):
        times[filled] = T0 + i * 1e-3
        points[filled] = point
        vals[filled] = scans[i]
        filled += 1
        if filled == rows:
            write()
        if (i + 1) * nch % POINT == 0:
            if filled:
                write()
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
    nch = len(names)
    half = 0.0
    point = 0
    chunk = np.sin(np.arange(POINT) / 500.0).reshape(-1, nch)
    for i in range(total // nch):
        if run.add_scan("meter", names, T0 + i * 1e-3, chunk[i % chunk.shape[0]], point):
            await run.drain()
        if (i + 1) * nch % POINT == 0:
            await run.complete_point(point, {"x": float(point)}, {}, T0, T0)
            point += 1
        if (i + 1) * nch == total // 2:
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
    ours: list[float] = []
    raw: list[float] = []
    low: list[float] = []
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
        *creation_figures(quick),
    ]


def main() -> None:
    configure("warning")
    parser = arguments(__doc__)
    args = parser.parse_args()
    report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    main()


def through_raw_h5py_scans(
    path: Path, scans: np.ndarray, scans_per_point: int, arriving: int = 1
) -> float:
    """The plainest synchronous writer of one instrument's scans given as arrays (a row of
    `scans` per scan), arriving `arriving` at a time — one as a polled driver returns them,
    a block as a buffered one does: layout 3's value[scans, channels], time, point_index and
    sampled, in RunFile's chunks (about 4096 values), one write per block, gzip-1 + shuffle,
    flush + fsync per point. Samples per second."""
    count, width = scans.shape
    rows = max(1, BLOCK // width)
    handle = h5py.File(path, "w", libver=LIBVER, rdcc_nbytes=1 << 18)
    group = handle.create_group("entry/instrument/meter/data")
    shapes = (("time", "f8", ()), ("value", "f8", (width,)), ("point_index", "i8", ()))
    datasets = [
        group.create_dataset(
            name,
            shape=(0, *shape),
            maxshape=(None, *shape),
            chunks=(rows, *shape),
            dtype=dt,
            compression="gzip",
            compression_opts=1,
            shuffle=True,
        )
        for name, dt, shape in (*shapes, ("sampled", "u1", (width,)))
    ]
    handle.swmr_mode = True
    fd = handle.id.get_vfd_handle()
    block_time, block_point = np.empty(rows), np.empty(rows, np.int64)
    block_value = np.empty((rows, width))
    sampled = np.ones((rows, width), np.uint8)
    filled = written = 0

    def write() -> None:
        nonlocal filled, written
        end = written + filled
        blocks = (block_time[:filled], block_value[:filled], block_point[:filled])
        for dataset, block in zip(datasets, (*blocks, sampled[:filled]), strict=True):
            dataset.resize(end, axis=0)
            dataset[written:end] = block
        written, filled = end, 0

    began = time.perf_counter()
    if arriving == 1:  # scan by scan: a row at a time
        for i in range(count):
            block_time[filled] = T0 + i * 1e-3
            block_point[filled] = i // scans_per_point
            block_value[filled] = scans[i]
            filled += 1
            if filled == rows:
                write()
            if (i + 1) % scans_per_point == 0:
                if filled:
                    write()
                handle.flush()
                os.fsync(fd)
    else:  # blocks of scans, copied a slice at a time; a block never spans a point's end
        i = 0
        while i < count:
            end_of_point = (i // scans_per_point + 1) * scans_per_point
            stop = min(i + arriving, end_of_point, count)
            while i < stop:
                n = min(rows - filled, stop - i)
                block_time[filled : filled + n] = T0 + np.arange(i, i + n) * 1e-3
                block_point[filled : filled + n] = i // scans_per_point
                block_value[filled : filled + n] = scans[i : i + n]
                filled += n
                i += n
                if filled == rows:
                    write()
            if i == end_of_point:
                if filled:
                    write()
                handle.flush()
                os.fsync(fd)
    handle.close()
    return count * width / (time.perf_counter() - began)
