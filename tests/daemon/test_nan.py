"""A device that answers NaN or ±inf: every JSON output stays strict (null), the samples are
counted apart as invalid and kept out of the statistics, and their quality is not `good`."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mdfd.daemons.storage import read_channel, read_summary
from mdfd.daemons.storage.layout import stat_column
from tests.support import edit_config, mdfd, read_export

from .harness import Daemon, environment, mdfctl, write_config

BROKEN = {
    "meter.broken": "{unit: V, initial: .nan}",
    "meter.overflow": "{unit: V, initial: .inf}",
}

RECIPE = """
recipe: {name: nan-test, version: "1"}
sweep:
  parameters:
    temperature: {unit: degC, values: [200, 300]}
steps:
  - ramp: {channel: furnace.setpoint, to: temperature, rate: 50 degC/min}
  - acquire: {channels: [meter.resistivity, meter.broken, meter.overflow], rate: 2, count: 4}
"""


def strict(text: str) -> Any:
    """Parse as a strict JSON reader (a browser, jq, Go) would: NaN and Infinity are errors."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _config(tmp_path: Path) -> Path:
    config = write_config(tmp_path)

    def broken_meter(model: dict) -> None:
        channels = model["instruments"]["meter"]["channels"]
        del channels["specimen"]
        channels.update({name.split(".")[1]: yaml.safe_load(spec) for name, spec in BROKEN.items()})

    return edit_config(config, broken_meter)


def test_probe_json_is_strict_and_a_nan_reading_is_not_good(tmp_path: Path) -> None:
    done = mdfd("probe", "--config", str(_config(tmp_path)), "meter", "--json")
    assert done.returncode == 0, done.stderr
    channels = strict(done.stdout)["channels"]
    assert channels["broken"]["value"] is None
    assert channels["overflow"]["value"] is None
    assert channels["broken"]["quality"] == "bad"
    assert channels["overflow"]["quality"] == "bad"
    assert channels["resistivity"] == {**channels["resistivity"], "value": 1.8, "quality": "good"}


async def test_nan_samples_are_counted_apart_and_every_output_stays_strict_json(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    recipe = tmp_path / "nan.yaml"
    recipe.write_text(textwrap.dedent(RECIPE))
    daemon = Daemon(config, env=environment())
    try:
        await asyncio.to_thread(daemon.start)
        watched = await asyncio.to_thread(
            mdfctl, "--config", str(config), "submit", str(recipe), "--json", "--watch"
        )
        assert watched.returncode == 0, watched.stderr
        events = [strict(line) for line in watched.stdout.splitlines() if line.strip()]
        run_id = events[0]["id"]
        point_ends = [e for e in events if e.get("event") == "point_end"]
        assert len(point_ends) == 2
        status, text = await asyncio.to_thread(
            daemon.request, "GET", f"/runs/{run_id}", None, {"Accept": "application/json"}
        )
        assert status == 200
        run = text if isinstance(text, dict) else strict(text)
        shown = await asyncio.to_thread(mdfctl, "--config", str(config), "show", run_id, "--json")
        assert shown.returncode == 0, shown.stderr
        strict(shown.stdout)
        # A person watching: null values (invalid samples) are shown, not a traceback.
        human = await asyncio.to_thread(
            mdfctl, "--config", str(config), "submit", str(recipe), "--watch"
        )
        assert human.returncode == 0, human.stderr
        assert "completed" in human.stdout
    finally:
        await asyncio.to_thread(daemon.stop)

    for point in run["points"]:
        summary = point["summary"]
        assert summary["meter.resistivity"]["n"] == 4
        assert summary["meter.resistivity"]["invalid"] == 0
        assert summary["meter.resistivity"]["mean"] == 1.8
        for channel in BROKEN:
            assert summary[channel]["n"] == 0
            assert summary[channel]["invalid"] == 4
            assert summary[channel]["min"] is None
            assert summary[channel]["max"] is None
            assert summary[channel]["mean"] is None

    csv_path = tmp_path / "summary.csv"
    done = await asyncio.to_thread(
        mdfd, "export", "--config", str(config), "--csv", str(csv_path), run_id
    )
    assert done.returncode == 0, done.stderr
    rows = read_export(csv_path)
    assert len(rows) == 2
    for row in rows:
        assert row["meter.resistivity_n"] == "4"
        assert row["meter.resistivity_invalid"] == "0"
        for channel in BROKEN:
            assert row[f"{channel}_n"] == "0"
            assert row[f"{channel}_invalid"] == "4"
            assert row[f"{channel}_min"] == row[f"{channel}_max"] == ""

    data_file = tmp_path / "var" / "data" / f"{run_id}.h5"
    summary = read_summary(data_file)
    for channel in BROKEN:
        assert summary.columns[stat_column(channel, "n")].tolist() == [0, 0]
        assert summary.columns[stat_column(channel, "invalid")].tolist() == [4, 4]
        assert np.isnan(summary.columns[stat_column(channel, "min")]).all()
        assert np.isnan(summary.columns[stat_column(channel, "max")]).all()
    # The raw samples keep what the device said: 8 samples, each NaN.
    broken = read_channel(data_file, "meter.broken").value
    assert broken.shape == (8,)
    assert np.isnan(broken).all()
