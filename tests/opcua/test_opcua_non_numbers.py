"""Acquired values that are not numbers are never dropped unseen: refused at validation where
the config says so, stored as invalid samples with a warning where only the server knows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from opcua_support import write_config

from mdfd.daemons.storage import read_channel, read_summary
from tests.support import REPO, free_port, mdfd

RECIPE = """
recipe: {name: text-acquired, version: "1"}
sweep:
  parameters:
    temperature: {unit: degC, values: [100]}
steps:
  - acquire: {channels: [reactor.temperature, reactor.fault_stuck], rate: 2, count: 4}
"""

STUCK = '      fault_stuck: {node: "s=Faults.Stuck"}\n'


@pytest.mark.slow
def test_a_text_value_from_the_server_is_an_invalid_sample_with_a_warning(tmp_path: Path) -> None:
    """Before: the four string samples of Faults.Stuck vanished, n 0, nothing said."""
    config = write_config(tmp_path / "var", free_port())
    text = config.read_text().replace("    channels:\n", "    channels:\n" + STUCK, 1)
    config.write_text(f"vocabulary: {REPO / 'config' / 'vocabulary.yaml'}\n" + text)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    result = mdfd("run", "--simulate", "--json", "--config", str(config), str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "acquired value is not a number; stored as an invalid sample" in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    values = read_channel(Path(summary["data_file"]), "reactor.fault_stuck").value
    invalid = read_summary(Path(summary["data_file"])).columns["reactor.fault_stuck_invalid"]
    assert len(values) == 4
    assert np.isnan(values).all()
    assert invalid.tolist() == [4]


def test_a_text_channel_in_acquire_is_refused_at_validation(tmp_path: Path) -> None:
    config = tmp_path / "mdf.yaml"
    config.write_text(
        f"mdf: {{id: text-mdf, domain: metal, site: KR-TEST}}\n"
        f"storage: {{data_dir: {tmp_path}/data, state_dir: {tmp_path}/state}}\n"
        f"vocabulary: {REPO / 'config' / 'vocabulary.yaml'}\n"
        "instruments:\n"
        "  meter:\n"
        "    driver: memory\n"
        "    channels:\n"
        "      label: {initial: batch-7}\n"
        "      resistivity: {unit: microohm*cm, initial: 1.8}\n"
    )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        'recipe: {name: text, version: "1"}\n'
        "sweep: {parameters: {x: {values: [1]}}}\n"
        "steps:\n"
        "  - acquire: {channels: [meter.resistivity, meter.label], rate: 1, count: 2}\n"
    )
    done = mdfd("validate", str(recipe), "--config", str(config))
    assert done.returncode == 2
    assert "channel 'meter.label' gives text values" in done.stderr
    assert f"{recipe}:4:" in done.stderr
