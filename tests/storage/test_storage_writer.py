"""RunFile against real h5py and real files: values exact, layout readable, limits enforced."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from storage_helpers import (
    CHANNELS,
    RELEASE_0_2,
    T0,
    add_one,
    make_run_file,
    parameters,
    sample,
    write_point,
)

from mdfd.daemons.core.stats import RunningStats
from mdfd.daemons.storage import (
    ChannelSpec,
    DiskNearlyFull,
    RunFile,
    StorageError,
    read_channel,
    read_metadata,
    read_summary,
)


def expected_channel(number: int, points: range, samples: int) -> tuple[list, list, list]:
    times, values, indices = [], [], []
    for point in points:
        for i in range(samples):
            t, v = sample(number, point, i)
            times.append(t)
            values.append(v)
            indices.append(point)
    return times, values, indices


async def test_points_are_written_exactly(tmp_path: Path) -> None:
    path = tmp_path / "run-1.h5"
    run = make_run_file(path)
    await run.open()
    counts = [await write_point(run, point, samples=13) for point in range(5)]
    await run.close("completed", {"message": "all good"})

    assert counts == [
        {"furnace.temperature": 13 * k, "meter.capacitance": 13 * k} for k in range(1, 6)
    ]
    for number, spec in enumerate(CHANNELS):
        data = read_channel(path, spec.name)
        times, values, indices = expected_channel(number, range(5), 13)
        assert data.time.tolist() == times
        assert data.value.tolist() == values
        assert data.point_index.tolist() == indices

    summary = read_summary(path)
    assert summary.rows == 5
    assert summary.columns["point_index"].tolist() == [0, 1, 2, 3, 4]
    assert summary.columns["temperature"].tolist() == [
        parameters(p)["temperature"] for p in range(5)
    ]
    assert summary.columns["dwell"].tolist() == [0.0, 0.0, 0.0, 0.0, 10.0]
    for number, spec in enumerate(CHANNELS):
        for point in range(5):
            stats = RunningStats()
            for i in range(13):
                stats.add(sample(number, point, i)[1])
            want = stats.result()
            for stat in ("mean", "std", "min", "max", "n"):
                assert summary.columns[f"{spec.name}_{stat}"][point] == getattr(want, stat)
    assert summary.columns["start_time"].tolist() == [T0 + p * 100 for p in range(5)]
    assert summary.columns["status"].tolist() == ["completed"] * 5


async def test_entry_metadata_and_nexus_attributes(tmp_path: Path) -> None:
    path = tmp_path / "run-1.h5"
    run = make_run_file(path)
    await run.open()
    assert read_metadata(path)["status"] == "running"
    await write_point(run, 0, samples=3)
    await run.close("aborted", {"message": "operator abort"})

    meta = read_metadata(path)
    assert meta["NX_class"] == "NXentry"
    assert meta["run_id"] == "run-1"
    assert meta["material_domain"] == "ceramic"
    assert json.loads(meta["mdf_domains"]) == ["metal", "ceramic"]
    assert meta["status"] == "aborted"
    assert meta["recipe_sha256"] == hashlib.sha256(meta["recipe_text"].encode()).hexdigest()
    assert json.loads(meta["instrument_identities"])["meter"] == "ACME,LCR,002"
    assert json.loads(meta["close_metadata"]) == {"message": "operator abort"}
    assert meta["end_time"] > meta["start_time"]
    with h5py.File(path, "r") as handle:
        assert handle.attrs["default"] == "entry"
        summary = handle["entry/summary"]
        assert summary.attrs["NX_class"] == "NXdata"
        assert summary.attrs["signal"] == "mean"
        assert summary.attrs["axes"].tolist() == ["temperature", "."]
        assert summary.attrs["temperature_indices"] == 0
        assert summary["mean_errors"].id == summary["std"].id  # one dataset, two names
        assert summary["mean"].shape == (1, 2)  # [points, channels]
        assert summary["mean"].attrs["channels"].tolist() == [c.name for c in CHANNELS]
        assert summary["mean"].attrs["channel_units"].tolist() == ["degC", "nF"]
        series = handle["entry/instrument/meter/data"]
        assert series.attrs["NX_class"] == "NXdata"
        assert series.attrs["signal"] == "value"
        assert series["value"].shape == (3, 1)  # [scans, channels]
        assert series["value"].attrs["units"] == "nF"
        assert handle["entry/instrument/furnace"].attrs["identity"] == "ACME,F1,001"
    assert run.data_paths() == {
        "furnace.temperature": "/entry/instrument/furnace/data",
        "meter.capacitance": "/entry/instrument/meter/data",
    }


async def test_tiny_queue_back_pressure_loses_nothing(tmp_path: Path) -> None:
    """One block in flight, one-sample blocks: almost every sample waits in the backlog."""
    path = tmp_path / "run-1.h5"
    run = make_run_file(path, block_size=1, queue_blocks=1, compression=None)
    await run.open()
    await write_point(run, 0, samples=600)  # all 1200 samples before a single drain
    for point in (1, 2):
        for i in range(200):
            for number, spec in enumerate(CHANNELS):
                t, value = sample(number, point, i)
                add_one(run, spec.name, t, value, point)
            if i % 7 == 0:
                await run.drain()
        await run.complete_point(point, parameters(point), {}, 0.0, 1.0)
    await run.close("completed")
    times, values, _ = expected_channel(1, range(1), 600)
    more_times, more_values, _ = expected_channel(1, range(1, 3), 200)
    data = read_channel(path, "meter.capacitance")
    assert data.time.tolist() == times + more_times
    assert data.value.tolist() == values + more_values
    summary = read_summary(path)
    assert summary.columns["meter.capacitance_n"].tolist() == [600, 0, 0]
    assert np.isnan(summary.columns["meter.capacitance_mean"][1])


async def test_point_status_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "run-1.h5"
    run = make_run_file(path)
    await run.open()
    await write_point(run, 0, samples=2)
    await run.complete_point(1, parameters(1), {}, T0, T0, status="skipped")
    await run.close("completed")
    assert read_summary(path).columns["status"].tolist() == ["completed", "skipped"]
    assert read_summary(path).completed().tolist() == [0]


async def test_a_new_run_never_overwrites_completed_points(tmp_path: Path) -> None:
    path = tmp_path / "run-1.h5"
    run = make_run_file(path)
    await run.open()
    await write_point(run, 0, samples=2)
    await run.close("completed")
    with pytest.raises(StorageError, match="already exists"):
        await make_run_file(path).open()
    assert read_summary(path).rows == 1


async def test_a_file_without_points_of_the_same_run_is_taken_over(tmp_path: Path) -> None:
    """A process that died before its first checkpoint leaves such a file; the run restarts."""
    path = tmp_path / "run-1.h5"
    first = make_run_file(path)
    await first.open()
    await first.close("interrupted")
    run = make_run_file(path)
    await run.open()
    await write_point(run, 0, samples=4)
    await run.close("completed")
    assert read_summary(path).rows == 1
    assert read_metadata(path)["resume_count"] == 1


async def test_bad_names_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected"):
        RunFile(tmp_path / "x.h5", metadata={}, channels=[ChannelSpec("nodot", "V")], parameters=[])
    with pytest.raises(ValueError, match="clash"):
        RunFile(tmp_path / "x.h5", metadata={}, channels=CHANNELS, parameters=["status"])
    path = tmp_path / "run-1.h5"
    run = make_run_file(path)
    await run.open()
    with pytest.raises(ValueError, match="not declared"):
        run.add_scan("oven", ["oven.t"], 0.0, np.array([1.0]), 0)
    with pytest.raises(ValueError, match=r"'furnace\.nope' is not of 'furnace'"):
        run.add_scan("furnace", ["furnace.nope"], 0.0, np.array([1.0]), 0)
    with pytest.raises(ValueError, match="unknown names"):
        await run.complete_point(0, {"pressure": 1.0}, {}, 0.0, 1.0)
    await run.close("failed")


async def test_an_unwritable_location_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    run = make_run_file(blocker / "run-1.h5")
    with pytest.raises(StorageError, match="not-a-directory"):
        await run.open()
    await run.close("failed")  # harmless after a failed open; no thread is left behind


@pytest.mark.parametrize("resume", [False, True])
async def test_a_half_created_file_is_set_aside_not_deleted(tmp_path: Path, resume: bool) -> None:
    """Killed while creating the file, before any checkpoint: start afresh, keep the remains."""
    path = tmp_path / "run-1.h5"
    with h5py.File(path, "w", libver=("v110", "v110")) as handle:
        handle.create_group("entry").attrs["run_id"] = "run-1"  # _build got no further
    run = make_run_file(path)
    await (run.open(resume_rows={}, resume_points=0) if resume else run.open())
    await write_point(run, 0, samples=3)
    await run.close("completed")
    assert read_summary(path).rows == 1
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 2
    assert names[1].startswith("run-1.h5.unreadable-")


async def test_a_file_of_another_run_is_never_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "run-1.h5"
    other = make_run_file(path, run_id="run-0")
    await other.open()
    await other.close("interrupted")
    with pytest.raises(StorageError, match="run 'run-0'"):
        await make_run_file(path).open()


async def test_no_run_starts_on_a_disk_below_its_reserve(tmp_path: Path) -> None:
    run = make_run_file(tmp_path / "run-1.h5", min_free_bytes=1 << 62)
    with pytest.raises(DiskNearlyFull, match="reserve"):
        await run.open()
    assert not (tmp_path / "run-1.h5").exists()


async def test_a_disk_reaching_its_reserve_stops_the_run_with_a_healthy_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run-1.h5"
    run = make_run_file(path)
    await run.open()
    await write_point(run, 0, samples=10)
    run._file.min_free_bytes = 1 << 62  # the disk "fills" between two points
    with pytest.raises(DiskNearlyFull):
        await write_point(run, 1, samples=10)
    await run.close("interrupted", {"message": "disk nearly full"})
    # closed properly: no dead-writer flags, the status recorded, point 0 intact
    assert read_metadata(path)["status"] == "interrupted"
    assert read_summary(path).rows == 1
    with h5py.File(path, "r") as handle:  # a plain (non-SWMR) open fails on dirty flags
        assert handle["entry/summary/point_index"][()].tolist() == [0]


async def test_a_run_in_an_older_layout_is_refused_on_resume_not_damaged(
    tmp_path: Path,
) -> None:
    """A file of release 0.2 (per-channel datasets) is read, but never appended to in the new
    layout: the resume says why and what to do, and the file is left as it was."""
    path = tmp_path / "run-1.h5"
    shutil.copy(RELEASE_0_2, path)
    with h5py.File(path, "r+") as handle:
        handle["entry"].attrs["run_id"] = "run-1"
    before = path.read_bytes()
    resumed = make_run_file(path)
    with pytest.raises(StorageError, match="layout 2 by an older mdfd"):
        await resumed.open(resume_rows={"furnace.temperature": 12}, resume_points=4)
    assert path.read_bytes() == before
    assert read_summary(path).rows == 4


async def test_a_scan_of_an_instrument_is_stored_per_channel(tmp_path: Path) -> None:
    """`add_scan`: one call per instrument and scan; each channel reads back its own column."""
    path = tmp_path / "run-1.h5"
    channels = [ChannelSpec(f"rack.ch{k}", "V") for k in range(3)]
    names = [spec.name for spec in channels]
    run = RunFile(
        path, metadata={"run_id": "run-1"}, channels=channels, parameters=[], block_size=4
    )
    await run.open()
    for point in range(2):
        for i in range(5):
            values = np.array([point * 100.0 + i + k * 0.5 for k in range(3)])
            if run.add_scan("rack", names, T0 + point * 10 + i, values, point):
                await run.drain()
        await run.complete_point(point, {}, {}, T0 + point * 10, T0 + point * 10 + 5)
    with pytest.raises(ValueError, match="3 channels, 2 values"):
        run.add_scan("rack", names, T0, np.array([1.0, 2.0]), 2)
    await run.close("completed")
    for k, name in enumerate(names):
        data = read_channel(path, name)
        assert data.value.tolist() == [p * 100.0 + i + k * 0.5 for p in range(2) for i in range(5)]
        assert data.time.tolist() == [T0 + p * 10 + i for p in range(2) for i in range(5)]
        assert data.point_index.tolist() == [p for p in range(2) for _ in range(5)]


async def test_blocks_of_scans_are_stored_as_the_same_scans_one_by_one(tmp_path: Path) -> None:
    """`add_scans` (an instrument's buffered scans) across block boundaries and points, all
    of the instrument's channels or some, reads back as `add_scan` row by row would."""
    channels = [ChannelSpec(f"rack.ch{k}", "V") for k in range(3)]
    names = [spec.name for spec in channels]
    paths = {how: tmp_path / f"{how}.h5" for how in ("blocks", "rows")}
    rng = np.random.default_rng(3)
    batches = [
        (names, 0, rng.normal(size=(7, 3))),  # 7 scans over blocks of 4 values (1 scan each)
        (names[1:], 0, rng.normal(size=(2, 2))),  # some of the channels
        (names, 1, rng.normal(size=(5, 3))),
    ]
    for how, path in paths.items():
        run = RunFile(
            path, metadata={"run_id": how}, channels=channels, parameters=[], block_size=4
        )
        await run.open()
        t = T0
        for point, (asked, index, values) in enumerate(batches):
            times = t + np.arange(values.shape[0]) * 0.5
            t = float(times[-1]) + 1.0
            if how == "blocks":
                if run.add_scans("rack", asked, times, values, index):
                    await run.drain()
            else:
                for k in range(values.shape[0]):
                    if run.add_scan("rack", asked, float(times[k]), values[k], index):
                        await run.drain()
            if point != 1:
                await run.complete_point(index, {}, {}, T0, t)
        with pytest.raises(ValueError, match="values of shape"):
            run.add_scans("rack", names, np.array([T0]), np.ones((1, 2)), 2)
        await run.close("completed")
    for name in names:
        blocks, rows = read_channel(paths["blocks"], name), read_channel(paths["rows"], name)
        assert len(blocks.value) == (14 if name != "rack.ch0" else 12)
        assert blocks.value.tolist() == rows.value.tolist()
        assert blocks.time.tolist() == rows.time.tolist()
        assert blocks.point_index.tolist() == rows.point_index.tolist()


async def test_scans_of_some_channels_and_single_readings_keep_each_channel_exact(
    tmp_path: Path,
) -> None:
    """A scan that reads some of an instrument's channels leaves the others out of their
    series (not NaN samples), in any order; an invalid (NaN) reading is kept as a sample."""
    path = tmp_path / "run-1.h5"
    channels = [ChannelSpec("rack.a", "V"), ChannelSpec("rack.b", "A"), ChannelSpec("oven.t", "K")]
    run = RunFile(
        path, metadata={"run_id": "run-1"}, channels=channels, parameters=[], block_size=2
    )
    await run.open()
    run.add_scan("rack", ["rack.b"], T0, np.array([1.0]), 0)
    run.add_scan("rack", ["rack.b", "rack.a"], T0 + 1, np.array([2.0, 20.0]), 0)
    for i in range(3):
        rack = np.array([30.0 + i, math.nan if i == 1 else 3.0 + i])
        run.add_scan("rack", ["rack.a", "rack.b"], T0 + 2 + i, rack, 0)
        run.add_scan("oven", ["oven.t"], T0 + 2 + i, np.array([300.0 + i]), 0)
    rows = await run.complete_point(0, {}, {}, T0, T0 + 5)
    run.add_scan("rack", ["rack.a"], T0 + 6, np.array([40.0]), 1)
    rows_1 = await run.complete_point(1, {}, {}, T0 + 6, T0 + 7)
    await run.close("completed")

    assert rows == {"rack.a": 5, "rack.b": 5, "oven.t": 3}
    assert rows_1 == {"rack.a": 6, "rack.b": 6, "oven.t": 3}
    a = read_channel(path, "rack.a")
    assert a.value.tolist() == [20.0, 30.0, 31.0, 32.0, 40.0]
    assert a.time.tolist() == [T0 + 1, T0 + 2, T0 + 3, T0 + 4, T0 + 6]
    assert a.point_index.tolist() == [0, 0, 0, 0, 1]
    b = read_channel(path, "rack.b")
    assert b.value[[0, 1, 2, 4]].tolist() == [1.0, 2.0, 3.0, 5.0]
    assert math.isnan(b.value[3])
    assert read_channel(path, "oven.t").value.tolist() == [300.0, 301.0, 302.0]


async def test_a_wide_file_has_a_few_datasets_per_instrument(tmp_path: Path) -> None:
    """The object count grows with instruments, not channels: what made creating a file of
    1,000 channels take seconds (~8 datasets per channel) is gone; timing is in bench/hdf5.py."""
    path = tmp_path / "wide.h5"
    channels = [ChannelSpec(f"i{k // 1000}.c{k % 1000}", "V") for k in range(5000)]
    run = RunFile(path, metadata={"run_id": "w"}, channels=channels, parameters=["x"])
    await run.open()
    scan = np.arange(1000, dtype=np.float64)
    for instrument in range(5):
        run.add_scan(f"i{instrument}", [f"i{instrument}.c{k}" for k in range(1000)], T0, scan, 0)
    await run.complete_point(0, {"x": 1.0}, {}, T0, T0 + 1)
    await run.close("completed")
    datasets: list[str] = []
    with h5py.File(path, "r") as handle:
        handle.visititems(
            lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None
        )
    assert len(datasets) == 5 * 4 + 6 + 5 + 3  # series, statistics, 1-D columns, entry fields
    assert read_channel(path, "i3.c999").value.tolist() == [999.0]
    assert read_summary(path).columns["i4.c7_n"].tolist() == [0]
