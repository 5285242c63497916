"""An adaptive recipe's bad input is refused at load: exit 2, `file:line: field: message`."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mdfd.recipes.loader import load_recipe
from mdfd.recipes.located import InputError
from tests.engine.conftest import write_config
from tests.support import mdfd

GOOD = """\
recipe: {name: campaign-test, version: "1"}
sweep:
  kind: adaptive
  parameters:
    temperature: {unit: degC, low: 100, high: 500}
    time: {unit: min, low: 1, high: 3, step: 1}
    mode: {type: categorical, choices: [1, 2]}
  objectives:
    level: {channel: furnace.setpoint, reduce: mean, direction: maximize}
  constraints:
    - {inputs: {temperature: 1, time: 100}, below: 700}
    - {channel: meter.resistivity, reduce: max, below: 5}
  budget: {max_points: 6}
  seed: 1
steps:
  - set: {furnace.setpoint: temperature}
  - dwell: time
  - acquire: {channels: [furnace.setpoint, meter.resistivity], rate: 2, count: 3}
"""

# (what to replace in GOOD, with what, the line and field the error must name, and its words)
BAD = {
    "unknown objective channel": (
        "level: {channel: furnace.setpoint,",
        "level: {channel: furnace.nothing,",
        9,
        "sweep.objectives.level.channel",
        "not acquired",
    ),
    "unknown reducer": ("reduce: mean", "reduce: median", 9, "sweep.objectives.level.reduce", ""),
    "unknown parameter in a constraint": (
        "{inputs: {temperature: 1, time: 100}",
        "{inputs: {temprature: 1, time: 100}",
        11,
        "sweep.constraints[0].inputs.temprature",
        "unknown parameter",
    ),
    "inverted range": (
        "low: 100, high: 500",
        "low: 500, high: 100",
        5,
        "sweep.parameters.temperature",
        "inverted",
    ),
    "empty range": (
        "low: 100, high: 500",
        "low: 100, high: 100",
        5,
        "sweep.parameters.temperature",
        "empty",
    ),
    "categorical without choices": (
        "choices: [1, 2]",
        "choices: []",
        7,
        "sweep.parameters.mode",
        "choices",
    ),
    "unsatisfiable constraint": (
        "below: 700",
        "below: 150",
        11,
        "sweep.constraints[0]",
        "no point",
    ),
    "zero budget": ("max_points: 6", "max_points: 0", 13, "sweep.budget.max_points", ""),
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "campaign.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_good_recipe_loads() -> None:
    recipe = load_recipe("campaign.yaml", text=GOOD)
    assert recipe.model.adaptive is not None
    assert recipe.model.sweep.count() == 6
    # The corners of the space are what validation checks the limits at.
    assert len(recipe.model.points()) == 2 * 2 * 2


@pytest.mark.parametrize("case", list(BAD))
def test_bad_campaign_is_located(case: str) -> None:
    old, new, line, field, words = BAD[case]
    assert old in GOOD
    with pytest.raises(InputError) as caught:
        load_recipe("campaign.yaml", text=GOOD.replace(old, new, 1))
    problems = [(p.line, p.field) for p in caught.value.problems]
    assert (line, field) in problems, problems
    assert words in str(caught.value)


def test_cli_exits_2_before_anything_is_touched(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    recipe = write(tmp_path, GOOD.replace("max_points: 6", "max_points: 0"))
    for command in ("validate", "plan", "run"):
        result = mdfd(command, str(recipe), "--config", str(config))
        assert result.returncode == 2, (command, result.stderr)
        assert "campaign.yaml:13: sweep.budget.max_points:" in result.stderr
    assert not (tmp_path / "var" / "state").exists()


def test_plan_shows_space_budget_and_worst_case_not_points(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    recipe = write(tmp_path, GOOD)
    result = mdfd("plan", str(recipe), "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert "points" not in plan
    assert plan["parameters"]["temperature"] == {
        "type": "float",
        "unit": "degC",
        "low": 100.0,
        "high": 500.0,
        "log": False,
    }
    assert plan["budget"] == {"max_points": 6}
    # Each point: a set (no time), the longest dwell (3 min), 3 samples at 2/s.
    assert plan["worst_point_seconds"] == 181.5
    assert plan["worst_case_seconds"] == 6 * 181.5
    shown = mdfd("plan", str(recipe), "--config", str(config))
    assert "100 .. 500" in shown.stdout
    assert "at most 6 points" in shown.stdout
