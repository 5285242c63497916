"""The engine's columnar path: one `read_block` per instrument and scan when the driver offers
it, the same arrays made from `read` when it does not, interlocks checked on the arrays and
statistics summarised per block with numpy, to the same results as sample by sample.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import structlog

from mdfd.daemons.core import stats as column_stats
from mdfd.daemons.core.clock import EngineClock
from mdfd.daemons.core.config import Interlock, load_config
from mdfd.daemons.core.stats import COUNT_FIELDS, ColumnStats, RunningStats, Stats, summarise
from mdfd.daemons.engine.instruments import Instruments
from mdfd.daemons.engine.interlocks import (
    InterlockBreach,
    InterlockGuard,
    InterlockUnverifiable,
    Unverified,
)
from mdfd.daemons.storage import read_channel
from mdfd.drivers import Block, BlockReadable, InstrumentConfig, Reading, Value
from mdfd.drivers.memory import MemoryDriver
from mdfd.recipes.steps import AcquireSpec
from tests.support import mdf_config, memory_instruments

from .test_hot_path import acquire, connected, swap

CHANNELS = ["meter.resistivity", "furnace.temperature", "meter.hardness"]
EXPECTED = {"meter.resistivity": 1.8, "furnace.temperature": 25.0, "meter.hardness": 60.0}


class Counting(MemoryDriver):
    """The memory driver, counting its calls of each kind."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.reads = 0
        self.blocks = 0

    async def read(self, channels: Sequence[str]) -> dict[str, Reading]:
        self.reads += 1
        return await super().read(channels)

    async def read_block(self, channels: Sequence[str]) -> Block:
        self.blocks += 1
        return await super().read_block(channels)


class ReadOnly:
    """A driver without `read_block` (a protocol nobody has made columnar yet): the memory
    driver's `read`, `write` and life cycle, and nothing else."""

    config_model: ClassVar[type[InstrumentConfig]] = MemoryDriver.config_model

    def __init__(self, name: str, config: object, context: object) -> None:
        self._inner = MemoryDriver(name, config, context)  # type: ignore[arg-type]
        self.name = name

    async def connect(self) -> None:
        await self._inner.connect()

    async def close(self) -> None:
        await self._inner.close()

    async def identify(self) -> str:
        return await self._inner.identify()

    async def read(self, channels: Sequence[str]) -> dict[str, Reading]:
        return await self._inner.read(channels)

    async def write(self, channel: str, value: Value) -> None:
        await self._inner.write(channel, value)


def stored(path: Path, channel: str) -> list[float]:
    return read_channel(path, channel).value.tolist()


async def test_an_instrument_offering_blocks_is_read_once_per_scan_and_never_by_reading(
    tmp_path: Path,
) -> None:
    instruments, clock = await connected(tmp_path)
    meter = await swap(instruments, "meter", Counting)
    furnace = await swap(instruments, "furnace", Counting)
    assert isinstance(meter, BlockReadable)
    spec = AcquireSpec(channels=CHANNELS, rate=1000, count=25)
    acquisition, path, error = await acquire(tmp_path, instruments, clock, spec)
    assert error is None
    assert (meter.blocks, furnace.blocks) == (25, 25)
    assert (meter.reads, furnace.reads) == (0, 0)
    assert acquisition.samples_written == 75
    for channel, value in EXPECTED.items():
        assert stored(path, channel) == [value] * 25
        result = acquisition.stats.results([channel])[channel]
        assert (result.n, result.mean, result.min, result.max, result.last) == (
            25,
            value,
            value,
            value,
            value,
        )


async def test_a_driver_without_blocks_gives_the_same_file_and_statistics(tmp_path: Path) -> None:
    results = {}
    for kind in ("blocks", "readings"):
        root = tmp_path / kind
        root.mkdir()
        instruments, clock = await connected(root)
        if kind == "readings":
            for name in ("meter", "furnace"):
                await swap(instruments, name, ReadOnly)
            assert not isinstance(instruments.drivers["meter"], BlockReadable)
        spec = AcquireSpec(channels=CHANNELS, rate=1000, count=30)
        acquisition, path, error = await acquire(root, instruments, clock, spec)
        assert error is None
        results[kind] = (
            {c: stored(path, c) for c in CHANNELS},
            acquisition.stats.results(CHANNELS),
            acquisition.latest,
        )
    assert results["blocks"] == results["readings"]
    assert results["readings"][2] == EXPECTED


async def test_the_guard_trips_on_the_array_value_past_the_tightest_bound(tmp_path: Path) -> None:
    instruments, _ = await connected(tmp_path)  # furnace 25 degC, hardness 60
    interlocks = [
        Interlock(channel="furnace.temperature", above=1000.0, message="too hot"),
        Interlock(channel="furnace.temperature", above=100.0, below=-50.0, message="wide"),
        Interlock(channel="meter.hardness", below=30.0, message="soft"),
    ]
    guard = InterlockGuard(interlocks, instruments)
    await instruments.reader(CHANNELS).scan()
    guard.raise_if_breached()  # every value within its bounds
    interlocks.append(Interlock(channel="meter.hardness", below=70.0, message="not hard enough"))
    guard = InterlockGuard(interlocks, instruments)
    await instruments.reader(CHANNELS).scan()
    with pytest.raises(InterlockBreach, match=r"meter.hardness = 60 is below 70.0 \(not hard"):
        guard.raise_if_breached()


async def test_a_nan_value_trips_no_interlock(tmp_path: Path) -> None:
    instruments, _ = await connected(tmp_path, trip=20.0)
    await instruments.write("meter.specimen", math.nan)
    guard = InterlockGuard([Interlock(channel="meter.specimen", above=0.5)], instruments)
    scan = await instruments.reader(["meter.specimen"]).scan()
    assert math.isnan(scan.values[0])
    guard.raise_if_breached()


async def test_an_interlocked_channel_that_gives_no_number_stops_the_run_as_unverifiable(
    tmp_path: Path,
) -> None:
    """An open thermocouple reads NaN: no bound can be held against it. It trips no breach,
    and it verifies nothing either: the monitor reports it unverified at once and the guard
    trips after `unverifiable_after`, exactly as for an instrument that does not answer."""
    instruments, _ = await connected(tmp_path)
    await instruments.write("meter.specimen", math.nan)
    changes: list[list[Unverified]] = []
    guard = InterlockGuard(
        [Interlock(channel="meter.specimen", above=0.5)],
        instruments,
        unverifiable_after=0.5,
        on_change=changes.append,
    )
    monitor = asyncio.create_task(guard.monitor())
    try:
        async with asyncio.timeout(10):
            tripped = await guard.tripped()
    finally:
        monitor.cancel()
        await asyncio.gather(monitor, return_exceptions=True)
    assert isinstance(tripped, InterlockUnverifiable)
    assert tripped.channels == ["meter.specimen"]
    assert "gave no number" in str(tripped)
    assert [u.channel for u in changes[0]] == ["meter.specimen"]  # said at the first poll


async def test_an_interlocked_channel_is_verified_again_when_it_gives_a_number(
    tmp_path: Path,
) -> None:
    instruments, _ = await connected(tmp_path)
    await instruments.write("meter.specimen", math.nan)
    changes: list[list[Unverified]] = []
    changed = asyncio.Event()

    def on_change(unverified: list[Unverified]) -> None:
        changes.append(unverified)
        changed.set()

    guard = InterlockGuard(
        [Interlock(channel="meter.specimen", above=0.5)], instruments, on_change=on_change
    )
    monitor = asyncio.create_task(guard.monitor())
    try:
        async with asyncio.timeout(10):
            await changed.wait()
            assert [u.channel for u in guard.unverified()] == ["meter.specimen"]
            changed.clear()
            await instruments.write("meter.specimen", 0.25)
            await changed.wait()
    finally:
        monitor.cancel()
        await asyncio.gather(monitor, return_exceptions=True)
    assert changes[-1] == []  # verified again, and said so
    assert guard.unverified() == []
    guard.raise_if_breached()


def test_a_block_summary_per_channel_equals_adding_its_samples_one_by_one() -> None:
    rng = random.Random(11)
    blocks = ((1, 5), (3, 40), (7, 1000), (4, 1), (4, 1))  # (4, 1): one scan, clean then not
    for number, (width, samples) in enumerate(blocks):
        rows = [[rng.gauss(1e3, 3.0) for _ in range(samples)] for _ in range(width)]
        if number == 3:
            rows.append([2.5])  # a clean scan: each value its own mean, min, max and last
        else:
            for row in rows[1:]:  # invalid samples here and there, none in the first channel
                for at in rng.sample(range(samples), k=max(1, samples // 10)):
                    row[at] = rng.choice([math.nan, math.inf, -math.inf])
            rows.append([math.nan] * samples)  # a channel that never gave a number
        summary = summarise(np.array(rows))
        for i, row in enumerate(rows):
            one, merged = RunningStats(), RunningStats()
            for value in row:
                one.add(value)
            merged.merge(
                int(summary.n[i]),
                float(summary.mean[i]),
                float(summary.m2[i]),
                float(summary.min[i]),
                float(summary.max[i]),
                float(summary.last[i]),
                int(summary.invalid[i]),
            )
            a, b = one.result(), merged.result()
            assert (a.n, a.invalid, a.min, a.max) == (b.n, b.invalid, b.min, b.max)
            assert a.last == b.last or (math.isnan(a.last) and math.isnan(b.last))
            if a.n:
                assert b.mean == pytest.approx(a.mean, rel=1e-13)
                assert b.std == pytest.approx(a.std, rel=1e-9, abs=1e-12)
            else:
                assert math.isnan(b.mean)
                assert math.isnan(b.std)


def test_a_point_s_column_statistics_equal_running_statistics_block_by_block() -> None:
    rng = np.random.default_rng(5)
    names = [f"i.c{k}" for k in range(6)]
    columns = ColumnStats(names[:4])  # two channels join later, as a second step's would
    running = {name: RunningStats() for name in names}
    for step, (width, samples) in enumerate(((4, 50), (6, 3), (6, 200))):
        block = rng.normal(1e3, 2.0, (width, samples))
        block[1, ::7] = math.nan
        block[2, :] = math.inf if step == 1 else block[2, :]  # a block with nothing valid
        at = columns.positions(names[:width])
        columns.merge(at, summarise(block))
        for name, row in zip(names, block.tolist(), strict=False):
            running[name].add_block(row)
    results = columns.results()
    assert list(results) == names
    for name in names:
        a, b = running[name].result(), results[name]
        assert (a.n, a.invalid, a.min, a.max, a.last) == (b.n, b.invalid, b.min, b.max, b.last)
        assert b.mean == pytest.approx(a.mean, rel=1e-13)
        assert b.std == pytest.approx(a.std, rel=1e-9)
    snapshot = columns.snapshot()  # the point's arrays, as its end hands them on
    assert all(snapshot.get(name) == results[name] for name in ("i.c0", "i.c1", "i.c5"))
    summaries = snapshot.fields()  # the control API's JSON fields: None for NaN and inf
    for name, stats in results.items():
        fields = {f: getattr(stats, f) for f in ("mean", "std", "min", "max", "n", "last")}
        fields["invalid"] = stats.invalid
        expected = {f: None if not math.isfinite(v) else v for f, v in fields.items()}
        assert summaries[name] == expected
    assert summaries["i.c2"]["invalid"] > 0
    empty = ColumnStats(["x.y"]).results()["x.y"]
    assert (empty.n, empty.invalid) == (0, 0)
    assert math.isnan(empty.mean)
    assert math.isnan(empty.last)


async def test_a_channel_the_block_read_refuses_is_read_by_value_and_stored_invalid(
    tmp_path: Path,
) -> None:
    """A server's text node where the config could not say (OPC-UA): `read_block` refuses it
    before the wire; the instrument is then read with `read`, its other channels kept, the
    text an invalid sample with a warning, never a failed run."""
    instruments = memory_instruments()
    instruments["meter"]["channels"]["label"] = {"initial": "A-17"}
    mdf_config(tmp_path, simulation={"time_scale": 3000.0}, instruments=instruments)
    config = load_config(tmp_path / "mdf.yaml")
    clock = EngineClock(config.model.time_scale)
    engine_instruments = Instruments(config.model, ["furnace", "meter"], clock.now)
    await engine_instruments.connect()
    spec = AcquireSpec(channels=["meter.resistivity", "meter.label"], rate=1000, count=6)
    with structlog.testing.capture_logs() as logs:
        acquisition, path, error = await acquire(tmp_path, engine_instruments, clock, spec)
    assert error is None
    assert engine_instruments.errors == 0
    assert stored(path, "meter.resistivity") == [1.8] * 6
    assert all(math.isnan(v) for v in stored(path, "meter.label"))
    label = acquisition.stats.results(["meter.label"])["meter.label"]
    assert (label.n, label.invalid) == (0, 6)
    events = [entry["event"] for entry in logs]
    assert events.count("columnar read refused; reading this instrument value by value") == 1
    assert events.count("acquired value is not a number; stored as an invalid sample") == 1


def test_statistics_reset_for_the_next_point_are_those_of_a_new_point() -> None:
    names = ["i.a", "i.b", "i.c"]
    block = np.array([[1.0, 2.0], [math.nan, 5.0], [7.0, math.inf]])
    used = ColumnStats(names)
    used.merge(used.positions(names), summarise(block * 3.0))
    kept = used.snapshot()
    used.reset()
    fresh = ColumnStats(names)
    for columns in (used, fresh):
        columns.merge(columns.positions(names[1:]), summarise(block[1:]))
    assert repr(used.snapshot()) == repr(fresh.snapshot())
    assert kept.n.tolist() == [2, 1, 1]  # the last point's snapshot is its own copy
    assert used.snapshot().n.tolist() == [0, 1, 1]


def test_small_blocks_take_python_floats_and_points_derive_fields_to_the_same_statistics() -> None:
    """A block of a few samples is summarised with Python floats (numpy's fixed cost per call
    exceeds the arithmetic there), and a point's fields are derived from its table with numpy
    for a whole commit at once or in Python floats for one channel: every way must give the
    same numbers, invalid samples and channels without any number included."""
    rng = np.random.default_rng(19)
    for width, samples in ((1, 1), (2, 1), (3, 5), (8, 4), (2, 16), (4, 1)):
        block = rng.normal(40.0, 3.0, (width, samples))
        if samples > 1:
            block[0, 0] = math.nan  # a channel with one invalid sample among numbers
        if width > 2:
            block[1, :] = [math.inf, -math.inf, math.nan, math.inf, math.nan][:samples]
        small, wide = column_stats._summarise_small(block), column_stats._summarise_numpy(block)
        assert small.table.shape == wide.table.shape == (column_stats.TABLE_ROWS, width)
        np.testing.assert_allclose(small.table, wide.table, rtol=1e-12, atol=1e-12)
        assert np.array_equal(np.isnan(small.table), np.isnan(wide.table))
        assert small.every == wide.every == bool((wide.table[column_stats.N] > 0).all())
        table = ColumnStats([f"i.c{k}" for k in range(width)])
        table.merge(slice(None), small)
        snapshot = table.snapshot()
        commit = np.stack([snapshot.table, snapshot.table])  # two points of one commit
        for k, channel in enumerate(snapshot.channels):
            running = RunningStats()
            running.add_block(block[k].tolist())
            want, one = running.result(), snapshot.get(channel)
            assert one is not None
            for name in Stats.__slots__:
                field = getattr(snapshot, name)
                batch = column_stats.stat_field(commit, name)
                assert field.dtype == batch.dtype == (np.int64 if name in COUNT_FIELDS else float)
                assert batch.shape == (2, width)
                for got in (field[k], batch[0, k], batch[1, k], getattr(one, name)):
                    np.testing.assert_allclose(
                        got, getattr(want, name), rtol=1e-12, atol=1e-12, err_msg=name
                    )
