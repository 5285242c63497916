"""The run file as NeXus tools see it: valid names, NXentry times, a default plot that resolves,
the recipe's materials as NXsample; and files of release 0.1 still read, export and plot."""

from __future__ import annotations

import csv
import re
import shutil
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
from nexusformat.nexus import nxload
from silx.io.nxdata import NXdata, get_default
from storage_helpers import (
    CHANNELS,
    PARAMETERS,
    RELEASE_0_2,
    T0,
    make_run_file,
    parameters,
    sample,
    write_point,
)
from support import SIM_CONFIG, mdfd, sim_env

from mdfd.daemons.core.stats import RunningStats
from mdfd.daemons.storage import ChannelSpec, RunFile, read_channel, read_summary
from mdfd.daemons.storage.export import write_csv
from mdfd.daemons.storage.layout import Material
from mdfd.daemons.storage.plot import plot_summary

NEXUS_NAME = re.compile(r"^[a-zA-Z0-9_]+$")
RELEASE_0_1 = Path(__file__).parent / "data" / "release-0.1-run.h5"
"""Written by release 0.1's RunFile (storage_helpers, 3 completed points and a failed one)."""

MATERIALS = [
    Material("raw_materials", "RM_ALLOY_GRADE", "C11000 ETP copper"),
    Material("raw_materials", "RM_WIRE_DIAMETER", 1.0, "mm"),
    Material("composition", "CMP_CU", 99.92, "percent"),
]


@pytest.fixture
async def run_path(tmp_path: Path) -> Path:
    path = tmp_path / "run-1.h5"
    run = make_run_file(path, materials=MATERIALS, clock="simulated")
    await run.open()
    for point in range(3):
        await write_point(run, point, samples=4)
    await run.close("completed")
    return path


def all_names(handle: h5py.File) -> list[str]:
    """Every group, dataset and attribute name in the file, as paths."""
    names = [f"/@{key}" for key in handle.attrs]

    def visit(name: str, obj: h5py.HLObject) -> None:
        names.append(name)
        names.extend(f"{name}@{key}" for key in obj.attrs)

    handle.visititems(visit)
    return names


def test_every_name_follows_the_nexus_rule(run_path: Path) -> None:
    with h5py.File(run_path, "r") as handle:
        names = all_names(handle)
    bad = [n for n in names if not NEXUS_NAME.match(re.split(r"[/@]", n)[-1])]
    assert bad == []
    assert "entry/summary/mean" in names
    assert "entry/instrument/meter/data/value" in names


def test_nxentry_has_start_and_end_time_fields(run_path: Path) -> None:
    with h5py.File(run_path, "r") as handle:
        entry = handle["entry"]
        assert "start_time" not in entry.attrs
        assert "end_time" not in entry.attrs
        start = datetime.fromisoformat(entry["start_time"][()].decode())
        end = datetime.fromisoformat(entry["end_time"][()].decode())
        assert start.utcoffset() is not None
        assert start <= end
        assert entry["start_time"].attrs["clock"] == "wall"


def test_the_default_plot_resolves(run_path: Path) -> None:
    with h5py.File(run_path, "r") as handle:
        entry = handle[handle.attrs["default"]]
        assert entry.attrs["NX_class"] == "NXentry"
        data = entry[entry.attrs["default"]]
        assert data.attrs["NX_class"] == "NXdata"
        signal = data[data.attrs["signal"]]
        axes = data.attrs["axes"].tolist()
        assert axes == ["temperature", "."]  # points along the parameter, then channels
        axis = data[axes[0]]
        assert signal.shape == (3, 2)
        assert axis.shape == (3,)
        assert axis[()].tolist() == [parameters(p)["temperature"] for p in range(3)]
        assert signal.attrs["channels"].tolist() == ["furnace.temperature", "meter.capacitance"]
        assert signal.attrs["channel_units"].tolist() == ["degC", "nF"]
        assert data[data.attrs["signal"] + "_errors"].shape == (3, 2)
        for name in data.attrs["auxiliary_signals"]:
            assert data[name].shape == (3, 2)


def test_nexusformat_finds_the_default_plottable_data(run_path: Path) -> None:
    root = nxload(str(run_path), "r")
    try:
        plottable = root.plottable_data
        assert plottable.nxpath == "/entry/summary"
        assert plottable.nxsignal.nxname == "mean"
        assert plottable.nxaxes[0].nxname == "temperature"
        assert plottable.nxsignal.nxdata.shape == (3, 2)
        series = root["entry/instrument/meter/data"]
        assert series.nxsignal.nxname == "value"
        assert series.nxaxes[0].nxname == "time"
        assert (
            series.nxsignal.nxdata[:, 0].tolist()
            == read_channel(run_path, "meter.capacitance").value.tolist()
        )
    finally:
        root.nxfile.close()


def test_silx_takes_the_summary_and_each_series_as_plottable_nxdata(run_path: Path) -> None:
    with h5py.File(run_path, "r") as handle:
        summary = get_default(handle)
        assert summary is not None
        assert summary.group.name == "/entry/summary"
        assert summary.is_valid
        assert summary.signal.shape == (3, 2)  # points x channels: an image, a column a curve
        assert summary.axes[0][()].tolist() == [parameters(p)["temperature"] for p in range(3)]
        assert len(summary.auxiliary_signals) == 2  # min and max
        series = NXdata(handle["entry/instrument/furnace/data"])
        assert series.is_valid
        assert series.signal.shape == (12, 1)
        assert series.axes_dataset_names[0] == "time"


def test_each_instrument_has_an_nxlog_view_of_its_scans(run_path: Path) -> None:
    """For readers that look for NXlog in an instrument: the same time and value, no copy."""
    root = nxload(str(run_path), "r")
    try:
        log = root["entry/instrument/meter/log"]
        assert log.nxclass == "NXlog"
        assert log["value"].nxdata[:, 0].tolist() == [
            sample(1, p, i)[1] for p in range(3) for i in range(4)
        ]
        assert log["time"].nxdata.tolist() == [
            sample(1, p, i)[0] for p in range(3) for i in range(4)
        ]
    finally:
        root.nxfile.close()
    with h5py.File(run_path, "r") as handle:
        link = handle["entry/instrument/meter"].get("log/value", getlink=True)
        assert link.path == "/entry/instrument/meter/data/value"


def test_the_materials_are_an_nxsample(run_path: Path) -> None:
    with h5py.File(run_path, "r") as handle:
        sample = handle["entry/sample"]
        assert sample.attrs["NX_class"] == "NXsample"
        diameter = sample["raw_materials/RM_WIRE_DIAMETER"]
        assert diameter[()] == 1.0
        assert diameter.attrs["units"] == "mm"
        assert diameter.attrs["vocabulary_code"] == "RM_WIRE_DIAMETER"
        assert sample["raw_materials/RM_ALLOY_GRADE"][()].decode() == "C11000 ETP copper"
        assert sample["composition/CMP_CU"].attrs["units"] == "percent"
    assert read_summary(run_path).materials == MATERIALS


def test_time_datasets_say_their_clock(run_path: Path) -> None:
    with h5py.File(run_path, "r") as handle:
        assert handle["entry"].attrs["clock"] == "simulated"
        assert handle["entry/summary/start_time"].attrs["clock"] == "simulated"
        assert handle["entry/instrument/meter/data/time"].attrs["clock"] == "simulated"
    assert read_summary(run_path).clock == "simulated"


@pytest.mark.parametrize(
    ("channels", "parameter_names", "clash"),
    [
        ([ChannelSpec("my-oven.t", "K"), ChannelSpec("my_oven.t2", "K")], [], "my_oven"),
        ([ChannelSpec("a.b", "")], ["mean"], "mean"),
        ([ChannelSpec("a.b", "")], ["mean_errors"], "mean_errors"),
    ],
)
def test_names_that_meet_in_the_file_are_refused(
    tmp_path: Path, channels: list[ChannelSpec], parameter_names: list[str], clash: str
) -> None:
    with pytest.raises(ValueError, match=clash):
        RunFile(tmp_path / "x.h5", metadata={}, channels=channels, parameters=parameter_names)


async def test_an_instrument_with_a_dash_gets_a_valid_group(tmp_path: Path) -> None:
    run = RunFile(
        tmp_path / "x.h5", metadata={}, channels=[ChannelSpec("my-oven.t", "K")], parameters=[]
    )
    await run.open()
    run.add_scan("my-oven", ["my-oven.t"], T0, np.array([300.0]), 0)
    await run.close("completed")
    assert run.data_paths() == {"my-oven.t": "/entry/instrument/my_oven/data"}
    assert read_channel(tmp_path / "x.h5", "my-oven.t").value.tolist() == [300.0]


def test_a_release_0_1_file_still_reads(tmp_path: Path) -> None:
    summary = read_summary(RELEASE_0_1)
    assert summary.rows == 4
    assert summary.parameters == PARAMETERS
    assert [c.name for c in summary.channels] == [c.name for c in CHANNELS]
    assert summary.columns["furnace.temperature_n"].tolist() == [4, 4, 4, 0]
    assert summary.columns["status"].tolist() == ["completed"] * 3 + ["failed"]
    assert summary.metadata["start_time"] < summary.metadata["end_time"]
    assert summary.clock == "wall"
    assert read_channel(RELEASE_0_1, "meter.capacitance").value.shape == (12,)
    assert write_csv(summary, tmp_path / "old.csv") == 4
    assert plot_summary(summary, tmp_path / "old.png") == 2


def test_export_and_plot_read_a_release_0_1_file(tmp_path: Path) -> None:
    data = tmp_path / "sim-mdf-01" / "data"
    data.mkdir(parents=True)
    shutil.copy(RELEASE_0_1, data / "legacy-1.h5")
    env = sim_env(tmp_path)
    csv_out, png_out = tmp_path / "legacy.csv", tmp_path / "legacy.png"
    done = mdfd("export", "--config", str(SIM_CONFIG), "legacy-1", "--csv", str(csv_out), env=env)
    assert done.returncode == 0, done.stderr
    rows = [line for line in csv_out.read_text().splitlines() if not line.startswith("#")]
    assert len(rows) == 1 + 4
    done = mdfd("plot", "--config", str(SIM_CONFIG), "legacy-1", "--out", str(png_out), env=env)
    assert done.returncode == 0, done.stderr
    assert png_out.read_bytes()[:4] == b"\x89PNG"


def expected_stats(number: int, point: int, samples: int) -> RunningStats:
    stats = RunningStats()
    for i in range(samples):
        stats.add(sample(number, point, i)[1])
    return stats


def test_export_and_plot_read_a_release_0_2_file(tmp_path: Path) -> None:
    """The layout of the release before this one (a group per channel): same table, same
    samples, through `mdfd export` and `mdfd plot` as processes."""
    summary = read_summary(RELEASE_0_2)
    assert summary.rows == 4
    assert summary.columns["status"].tolist() == ["completed"] * 3 + ["failed"]
    assert summary.columns["temperature"].tolist()[:3] == [
        parameters(p)["temperature"] for p in range(3)
    ]
    for number, spec in enumerate(CHANNELS):
        assert summary.columns[f"{spec.name}_n"].tolist() == [4, 4, 4, 0]
        data = read_channel(RELEASE_0_2, spec.name)
        assert data.value.tolist() == [sample(number, p, i)[1] for p in range(3) for i in range(4)]
        assert data.time.tolist() == [sample(number, p, i)[0] for p in range(3) for i in range(4)]
    data_dir = tmp_path / "sim-mdf-01" / "data"
    data_dir.mkdir(parents=True)
    shutil.copy(RELEASE_0_2, data_dir / "layout-2.h5")
    env = sim_env(tmp_path)
    csv_out, png_out = tmp_path / "layout-2.csv", tmp_path / "layout-2.png"
    done = mdfd("export", "--config", str(SIM_CONFIG), "layout-2", "--csv", str(csv_out), env=env)
    assert done.returncode == 0, done.stderr
    with open(csv_out, newline="") as handle:
        rows = [row for row in csv.reader(handle) if not row[0].startswith("#")]
    header, body = rows[0], rows[1:]
    assert [row[0] for row in body] == ["0", "1", "2", "3"]
    mean = header.index("meter.capacitance_mean [nF]")
    for point in range(3):
        assert float(body[point][mean]) == expected_stats(1, point, 4).result().mean
    assert body[3][mean] == ""  # the failed point had no sample
    done = mdfd("plot", "--config", str(SIM_CONFIG), "layout-2", "--out", str(png_out), env=env)
    assert done.returncode == 0, done.stderr
    assert png_out.read_bytes()[:4] == b"\x89PNG"
    assert plot_summary(summary, tmp_path / "direct.png") == 2  # a panel per channel
