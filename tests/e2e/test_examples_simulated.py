"""Every example recipe, end to end: `mdfd run --simulate` as a process on config/sim.yaml.

The simulators run the shared world model, so the curves the engine records must have the shape
the physics gives them; the data file, the CSV export and the upstream spool must agree with
each other value by value.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from mdfd.daemons.storage import read_channel, read_summary
from tests.support import EXAMPLES, SIM_CONFIG, mdfd, read_export, retry_port_race, sim_env

TIME_SCALE = "3000"


def run_example(tmp_path: Path, name: str) -> tuple[dict, list[dict[str, str]], Path]:
    env = sim_env(tmp_path / "var", MDFD_TIME_SCALE=TIME_SCALE)

    def attempt() -> subprocess.CompletedProcess[str]:
        env.update(sim_env(tmp_path / "var", MDFD_TIME_SCALE=TIME_SCALE))  # fresh ports
        return mdfd(
            "run",
            "--simulate",
            "--json",
            "--config",
            str(SIM_CONFIG),
            str(EXAMPLES / name),
            env=env,
            timeout=300,
        )

    result = retry_port_race(attempt)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed"
    assert summary["points_done"] == summary["points_total"]
    exported = tmp_path / "export.csv"
    done = mdfd(
        "export", "--config", str(SIM_CONFIG), summary["run_id"], "--csv", str(exported), env=env
    )
    assert done.returncode == 0, done.stderr
    rows = read_export(exported)
    assert len(rows) == summary["points_total"]
    return summary, rows, tmp_path / "var" / "sim-mdf-01"


def column(rows: list[dict[str, str]], name: str) -> np.ndarray:
    return np.array([float(r[name]) for r in rows])


def check_file_matches_export(
    summary: dict, rows: list[dict[str, str]], channel: str, unit: str
) -> None:
    """Each exported mean is the mean of that point's raw samples in the HDF5 file."""
    samples = read_channel(Path(summary["data_file"]), channel)
    values, points = samples.value, samples.point_index
    channels = read_summary(Path(summary["data_file"])).channels
    assert [c.unit for c in channels if c.name == channel] == [unit]
    for row in rows:
        index = int(float(row["point_index"]))
        samples = values[points == index]
        assert len(samples) == int(float(row[f"{channel}_n"]))
        assert samples.mean() == pytest.approx(float(row[f"{channel}_mean"]), rel=1e-9)


def check_records(var: Path, summary: dict, count: int) -> None:
    spool = var / "spool" / f"{summary['run_id']}.jsonl"
    records = [json.loads(line) for line in spool.read_text().splitlines()]
    assert len(records) == count
    assert len({r["id"] for r in records}) == count
    assert sorted(r["provenance"]["point"]["index"] for r in records) == list(range(count))


def test_metal_annealing_recovers_with_temperature_and_time(tmp_path: Path) -> None:
    summary, rows, var = run_example(tmp_path, "metal-annealing.yaml")
    temperature, time = column(rows, "temperature"), column(rows, "time")
    resistivity = column(rows, "meter.resistivity_mean")
    hardness = column(rows, "meter.hardness_mean")
    np.testing.assert_allclose(column(rows, "furnace.temperature_mean"), temperature, atol=2.0)
    for minutes in (15.0, 60.0):
        order = np.argsort(temperature[time == minutes])
        assert np.all(np.diff(resistivity[time == minutes][order]) < 0.02)
        assert (
            resistivity[time == minutes][order][0] > resistivity[time == minutes][order][-1] + 0.3
        )
        assert hardness[time == minutes][order][0] > hardness[time == minutes][order][-1] + 20
    for t in (250.0, 300.0, 350.0):
        at = temperature == t
        assert resistivity[at & (time == 60.0)][0] < resistivity[at & (time == 15.0)][0]
    check_file_matches_export(summary, rows, "meter.resistivity", "microohm*cm")
    check_records(var, summary, len(rows))
    check_copper_says_what_it_is(tmp_path, var, summary)


def check_copper_says_what_it_is(tmp_path: Path, var: Path, summary: dict) -> None:
    """A copper anneal on the four-domain sim MDF: file, CSV and records say metal for the
    material, list the MDF's domains apart, name the simulated clock and hold the materials."""
    served = ["chemistry", "metal", "ceramic", "textile"]
    with h5py.File(summary["data_file"], "r") as handle:
        entry = handle["entry"]
        assert entry.attrs["material_domain"] == "metal"
        assert json.loads(entry.attrs["mdf_domains"]) == served
        assert entry.attrs["clock"] == "simulated"
        diameter = entry["sample/raw_materials/RM_WIRE_DIAMETER"]
        assert (diameter[()], diameter.attrs["units"]) == (1.0, "mm")
        assert entry["sample/composition/CMP_CU"][()] == 99.92
        names: list[str] = [*handle.attrs]
        handle.visititems(lambda name, obj: names.extend([name.split("/")[-1], *obj.attrs]))
        assert [n for n in names if not re.match(r"^[a-zA-Z0-9_]+$", n)] == []  # NeXus rule
    exported = (tmp_path / "export.csv").read_text().splitlines()
    assert "# material_domain: metal" in exported
    assert "# sample.raw_materials.RM_ALLOY_GRADE: C11000 ETP copper" in exported
    header = next(line for line in exported if not line.startswith("#"))
    assert "meter.resistivity_mean [microohm*cm]" in header
    assert '"point_start [UTC, simulated clock]"' in header
    spool = var / "spool" / f"{summary['run_id']}.jsonl"
    provenance = json.loads(spool.read_text().splitlines()[0])["provenance"]
    assert provenance["recipe"]["domain"] == "metal"
    assert provenance["mdf"]["domains"] == served
    assert provenance["clock"] == "simulated"


def test_ceramic_sintering_capacitance_peaks_and_loss_falls(tmp_path: Path) -> None:
    summary, rows, var = run_example(tmp_path, "ceramic-mlcc-sintering.yaml")
    temperature, dwell = column(rows, "temperature"), column(rows, "dwell")
    capacitance = column(rows, "meter.capacitance_mean")
    loss = column(rows, "meter.loss_mean")

    def at(t: float, d: float, values: np.ndarray) -> float:
        return float(values[(temperature == t) & (dwell == d)][0])

    assert at(1180, 60, loss) > at(1300, 60, loss)
    assert at(1240, 180, capacitance) > at(1180, 60, capacitance)
    assert at(1240, 180, capacitance) > at(1300, 180, capacitance)  # over-firing
    check_file_matches_export(summary, rows, "meter.capacitance", "nF")
    check_records(var, summary, len(rows))


def test_chemistry_conversion_rises_and_selectivity_falls_with_temperature(tmp_path: Path) -> None:
    summary, rows, var = run_example(tmp_path, "chemistry-olefin-catalyst.yaml")
    temperature = column(rows, "temperature")
    pressure, flow = column(rows, "pressure"), column(rows, "flow")
    conversion = column(rows, "reactor.conversion_mean")
    selectivity = column(rows, "reactor.selectivity_mean")
    for p in (10.0, 20.0):
        for f in (1.0, 2.5):
            at = (pressure == p) & (flow == f)
            order = np.argsort(temperature[at])
            assert np.all(np.diff(conversion[at][order]) > 0)
            assert np.all(np.diff(selectivity[at][order]) < 0)
    slow, fast = (flow == 1.0), (flow == 2.5)
    assert np.all(
        conversion[slow & (pressure == 10)]
        > conversion[fast & (pressure == 10)][np.argsort(temperature[fast & (pressure == 10)])][
            np.argsort(np.argsort(temperature[slow & (pressure == 10)]))
        ]
    )
    check_records(var, summary, len(rows))


def test_textile_colour_strength_follows_temperature_and_ph(tmp_path: Path) -> None:
    summary, rows, var = run_example(tmp_path, "textile-reactive-dyeing.yaml")
    design = np.column_stack(
        [
            np.ones(len(rows)),
            column(rows, "temperature"),
            column(rows, "ph"),
            column(rows, "time"),
        ]
    )
    strength = column(rows, "meter.colour_strength_mean")
    coefficients, *_ = np.linalg.lstsq(design, strength, rcond=None)
    assert coefficients[1] > 0  # hotter baths dye faster
    assert coefficients[2] > 0  # reactive dyes fix under alkaline conditions
    np.testing.assert_allclose(column(rows, "reactor.ph_mean"), column(rows, "ph"), atol=0.3)
    check_file_matches_export(summary, rows, "meter.colour_strength", "dimensionless")
    check_records(var, summary, len(rows))
