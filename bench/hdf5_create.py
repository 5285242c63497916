"""Creating a run file for 1,000 and 10,000 channels (part of `python -m bench.hdf5`).

`RunFile.open()` for channels in instruments of 100 (metadata, materials, every group, dataset
and attribute, SWMR on, one flush + fsync) against raw h5py creating the same datasets with the
same chunks and compression, and no more: what the layout costs by itself. A third figure is
raw h5py creating the layout of release 0.2 (a group and 3 datasets per channel, 6 summary
columns per channel): what a per-channel layout costs however it is written. Seconds, lower is
better. Target: RunFile < 1 s for 10,000 channels.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import h5py

from bench.common import Figure
from mdfd.daemons.storage import ChannelSpec, RunFile
from mdfd.daemons.storage.layout import LIBVER

PER_INSTRUMENT = 100
BLOCK = 4096
STATS = ("mean", "std", "min", "max", "n", "invalid")
GZIP = {"compression": "gzip", "compression_opts": 1, "shuffle": True}


def channels(count: int) -> list[ChannelSpec]:
    return [
        ChannelSpec(f"rack{k // PER_INSTRUMENT}.ch{k % PER_INSTRUMENT}", "V") for k in range(count)
    ]


async def through_runfile(path: Path, count: int) -> float:
    run = RunFile(path, metadata={"run_id": "create"}, channels=channels(count), parameters=["x"])
    began = time.perf_counter()
    await run.open()
    took = time.perf_counter() - began
    await run.close("completed")
    return took


def _extendible(group: h5py.Group, name: str, dtype: str, chunk: tuple[int, ...]) -> None:
    width = chunk[1:]
    group.create_dataset(
        name, shape=(0, *width), maxshape=(None, *width), chunks=chunk, dtype=dtype, **GZIP
    )


def raw_new_layout(path: Path, count: int) -> float:
    """The datasets RunFile makes (layout 3), nothing else."""
    began = time.perf_counter()
    with h5py.File(path, "w", libver=LIBVER) as handle:
        for number in range(count // PER_INSTRUMENT):
            group = handle.create_group(f"entry/instrument/rack{number}/data")
            rows = BLOCK // PER_INSTRUMENT
            _extendible(group, "time", "f8", (rows,))
            _extendible(group, "value", "f8", (rows, PER_INSTRUMENT))
            _extendible(group, "point_index", "i8", (rows,))
            _extendible(group, "sampled", "u1", (rows, PER_INSTRUMENT))
        summary = handle.create_group("entry/summary")
        for name in ("point_index", "x", "start_time", "end_time"):
            _extendible(summary, name, "f8", (64,))
        _extendible(summary, "status", "S16", (64,))
        for stat in STATS:
            _extendible(summary, stat, "f8", (1, count))
        handle.swmr_mode = True
        handle.flush()
        os.fsync(handle.id.get_vfd_handle())
    return time.perf_counter() - began


def raw_old_layout(path: Path, count: int) -> float:
    """The datasets of release 0.2's layout (per channel), nothing else."""
    began = time.perf_counter()
    with h5py.File(path, "w", libver=LIBVER) as handle:
        summary = handle.create_group("entry/summary")
        for name in ("point_index", "x", "start_time", "end_time"):
            _extendible(summary, name, "f8", (64,))
        _extendible(summary, "status", "S16", (64,))
        for spec in channels(count):
            group = handle.create_group(f"entry/instrument/{spec.instrument}/{spec.short}")
            for name in ("time", "value", "point_index"):
                _extendible(group, name, "f8", (BLOCK,))
            stem = spec.name.replace(".", "__")
            for stat in STATS:
                _extendible(summary, f"{stem}_{stat}", "f8", (64,))
            summary[f"{stem}_mean_errors"] = summary[f"{stem}_std"]
        handle.swmr_mode = True
        handle.flush()
        os.fsync(handle.id.get_vfd_handle())
    return time.perf_counter() - began


def creation_figures(quick: bool) -> list[Figure]:
    attempts = 2 if quick else 3
    figures = []
    with tempfile.TemporaryDirectory(prefix="mdfd-bench-create-") as tmp:
        for count in (1_000, 10_000):
            ours, raw, old = [], [], []
            for attempt in range(attempts):  # interleaved: the machine's mood affects all alike
                ours.append(
                    asyncio.run(through_runfile(Path(tmp) / f"o{count}-{attempt}.h5", count))
                )
                raw.append(raw_new_layout(Path(tmp) / f"r{count}-{attempt}.h5", count))
                if count <= 1_000 or not quick:
                    old.append(raw_old_layout(Path(tmp) / f"p{count}-{attempt}.h5", count))
            figures.append(
                Figure(
                    name=f"run file creation, {count:,} channels",
                    unit="s",
                    samples=ours,
                    baseline_name="raw h5py, the same datasets",
                    baseline_samples=raw,
                    higher_is_better=False,
                    note=f"RunFile.open(), instruments of {PER_INSTRUMENT} channels;"
                    " target < 1 s at 10,000",
                )
            )
            if old:
                figures.append(
                    Figure(
                        name=f"run file creation, {count:,} channels",
                        unit="s",
                        samples=ours,
                        baseline_name="raw h5py, release 0.2's per-channel layout",
                        baseline_samples=old,
                        higher_is_better=False,
                        note="the layout this release replaced, written as plainly as possible",
                    )
                )
    return figures
