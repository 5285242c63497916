"""`mdfd export` and `mdfd plot` as processes, on a run file found through the config."""

from __future__ import annotations

import csv
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest
from storage_helpers import CHANNELS, T0, make_run_file, parameters, sample, write_point
from support import SIM_CONFIG, mdfd, sim_env

from mdfd.daemons.core.stats import RunningStats
from mdfd.daemons.storage.layout import Material

POINTS = 8
SAMPLES = 6
MATERIALS = [
    Material("raw_materials", "RM_ALLOY_GRADE", "C11000, ETP\ncopper"),
    Material("raw_materials", "RM_WIRE_DIAMETER", 1.0, "mm"),
    Material("composition", "CMP_CU", 99.92, "percent"),
]


@pytest.fixture
async def var(tmp_path: Path) -> Path:
    """A var directory as `config/sim.yaml` lays it out, holding run `run-7` (8 points)."""
    data = tmp_path / "sim-mdf-01" / "data"
    run = make_run_file(data / "run-7.h5", run_id="run-7", materials=MATERIALS, clock="simulated")
    await run.open()
    for point in range(POINTS - 1):
        await write_point(run, point, samples=SAMPLES)
    await run.complete_point(POINTS - 1, parameters(POINTS - 1), {}, T0, T0 + 1, status="failed")
    await run.close("completed")
    return tmp_path


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")


def test_export_writes_the_summary_row_by_row(var: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "run-7.csv"
    done = mdfd("export", "--config", str(SIM_CONFIG), "run-7", "--csv", str(out), env=sim_env(var))
    assert done.returncode == 0, done.stderr
    with open(out, newline="") as handle:
        lines = list(csv.reader(handle))
    comments = [",".join(line) for line in lines if line[0].startswith("#")]
    assert comments == [
        "# run_id: run-7",
        "# recipe: storage-test 1",
        "# material_domain: ceramic",
        "# mdf: sim-mdf-01",
        "# mdf_domains: metal, ceramic",
        "# clock: simulated (point times are simulated process time, 600 times faster than the"
        " wall clock)",
        "# sample.raw_materials.RM_ALLOY_GRADE: C11000, ETP copper",
        "# sample.raw_materials.RM_WIRE_DIAMETER: 1.0 [mm]",
        "# sample.composition.CMP_CU: 99.92 [percent]",
    ]
    rows = lines[len(comments) :]
    stats = []
    for channel in CHANNELS:
        stats += [f"{channel.name}_{s} [{channel.unit}]" for s in ("mean", "std", "min", "max")]
        stats += [f"{channel.name}_n", f"{channel.name}_invalid"]
    assert rows[0] == [
        "point_index",
        "temperature [degC]",
        "dwell [min]",
        *stats,
        "point_start [UTC, simulated clock]",
        "point_end [UTC, simulated clock]",
        "point_status",
    ]
    assert len(rows) == 1 + POINTS
    for point, row in enumerate(rows[1:POINTS]):
        want = [
            str(point),
            repr(parameters(point)["temperature"]),
            repr(parameters(point)["dwell"]),
        ]
        for number in range(len(CHANNELS)):
            running = RunningStats()
            for i in range(SAMPLES):
                running.add(sample(number, point, i)[1])
            result = running.result()
            want += [
                repr(result.mean),
                repr(result.std),
                repr(result.min),
                repr(result.max),
                str(result.n),
                "0",
            ]
        want += [iso(T0 + point * 100), iso(T0 + point * 100 + SAMPLES * 0.125), "completed"]
        assert row == want
    failed = rows[POINTS]
    assert failed[0] == str(POINTS - 1)
    assert failed[3:7] == ["", "", "", ""]  # no samples: empty cells, not "nan"
    assert failed[7:9] == ["0", "0"]
    assert failed[-1] == "failed"


def test_export_of_an_unknown_run_is_bad_input(var: Path, tmp_path: Path) -> None:
    done = mdfd(
        "export",
        "--config",
        str(SIM_CONFIG),
        "no-such-run",
        "--csv",
        str(tmp_path / "x.csv"),
        env=sim_env(var),
    )
    assert done.returncode == 2
    assert "no run 'no-such-run'" in done.stderr
    assert not (tmp_path / "x.csv").exists()


def test_plot_draws_a_png(var: Path, tmp_path: Path) -> None:
    out = tmp_path / "run-7.png"
    done = mdfd("plot", "--config", str(SIM_CONFIG), "run-7", "--out", str(out), env=sim_env(var))
    assert done.returncode == 0, done.stderr
    assert "2 panels" in done.stdout
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 360)  # two panels side by side at 100 dpi
    assert len(data) > 20_000


def test_plot_of_an_unknown_run_is_bad_input(var: Path, tmp_path: Path) -> None:
    done = mdfd(
        "plot",
        "--config",
        str(SIM_CONFIG),
        "../run-7",
        "--out",
        str(tmp_path / "x.png"),
        env=sim_env(var),
    )
    assert done.returncode == 2
    assert "cannot name a file" in done.stderr
