"""A recipe's `preconditions`: wait before the first point until they hold, or fail the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdfd.daemons.analysis.planning import make_plan
from mdfd.daemons.core.config import load_config
from mdfd.daemons.engine.events import EventBus, to_wire
from mdfd.daemons.engine.runner import RunExecutor
from mdfd.daemons.launch.oneshot import create_run, state_db
from mdfd.daemons.store import RunStatus
from mdfd.recipes.loader import load_recipe
from mdfd.recipes.located import InputError
from tests.support import edit_config, mdfd

from .conftest import write_config, write_recipe

PRECONDITION = "preconditions:\n  - {channel: furnace.temperature, below: 250 degC, timeout: 2 h}\n"


def _hot_config(tmp_path: Path, setpoint: float, tau: float = 600) -> Path:
    """The furnace is at 1300 degC when the run starts (the sinter before it just ended)."""

    def hot(model: dict) -> None:
        channels = model["instruments"]["furnace"]["channels"]
        channels["temperature"].update(tau=tau, initial=1300)
        channels["setpoint"]["initial"] = setpoint

    return edit_config(write_config(tmp_path), hot)


def _with_precondition(recipe: Path, precondition: str = PRECONDITION) -> Path:
    recipe.write_text(precondition + recipe.read_text())
    return recipe


async def _execute(config_path: Path, recipe_path: Path):
    config = load_config(config_path)
    recipe = load_recipe(recipe_path)
    events = EventBus()
    async with state_db(config) as state:
        run = await create_run(state, config, recipe)
        with events.watch() as queue:
            outcome = await RunExecutor(config, state, events=events).execute(run)
            seen = [to_wire(queue.get_nowait()) for _ in range(queue.qsize())]
        points = await state.points(run.id)
    return outcome, points, seen


async def test_the_run_waits_for_the_furnace_to_cool_before_point_0(tmp_path: Path) -> None:
    # Setpoint 25: the furnace cools from 1300 (tau 10 min); below 250 after ~17 min.
    config = _hot_config(tmp_path, setpoint=25)
    recipe = _with_precondition(write_recipe(tmp_path, "[200]"))
    outcome, points, events = await _execute(config, recipe)
    assert outcome.status is RunStatus.COMPLETED, outcome.message
    kinds = [(e["event"], e.get("state")) for e in events]
    waiting = ("run_state", "waiting until furnace.temperature below 250 degC")
    assert waiting in kinds
    first_point = next(i for i, (kind, _) in enumerate(kinds) if kind == "point_start")
    assert kinds.index(waiting) < first_point
    assert [p.status.value for p in points] == ["completed", "completed"]


async def test_a_precondition_that_never_holds_fails_the_run_before_any_point(
    tmp_path: Path,
) -> None:
    config = _hot_config(tmp_path, setpoint=1300)  # held hot: it never cools
    recipe = _with_precondition(write_recipe(tmp_path, "[200]"))
    outcome, points, events = await _execute(config, recipe)
    assert outcome.status is RunStatus.FAILED
    assert outcome.message.startswith(
        "precondition furnace.temperature below 250 degC did not hold within 2 h (last 1300)"
    )
    assert points == []
    assert not [e for e in events if e["event"] == "point_start"]


def test_preconditions_are_validated_with_located_errors(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    recipe = _with_precondition(
        write_recipe(tmp_path, "[200]"),
        "preconditions:\n"
        "  - {channel: furnace.temperatur, below: 250 degC, timeout: 2 h}\n"
        "  - {channel: furnace.temperature, below: 250 bar, timeout: 2 h}\n"
        "  - {channel: furnace.temperature, timeout: 2 h}\n",
    )
    with pytest.raises(InputError) as caught:
        load_recipe(recipe)
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (4, "preconditions[2]")
    assert "give `below`, `above` or both" in problem.message
    recipe.write_text(
        "\n".join(recipe.read_text().splitlines()[:3] + recipe.read_text().splitlines()[4:])
    )
    done = mdfd("validate", str(recipe), "--config", str(config))
    assert done.returncode == 2
    reported = done.stderr.strip().splitlines()
    assert reported[0].startswith(f"{recipe}:2: preconditions[0].channel: ")
    assert "no channel 'temperatur'" in reported[0]
    assert reported[1].startswith(f"{recipe}:3: preconditions[1].below: ")


def test_plan_counts_the_preconditions_timeouts_as_worst_case(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    plain = make_plan(load_recipe(write_recipe(tmp_path, "[200]")), config)
    waiting = make_plan(
        load_recipe(_with_precondition(write_recipe(tmp_path, "[200]", name="pre.yaml"))), config
    )
    assert waiting.estimated_seconds == plain.estimated_seconds
    assert waiting.precondition_seconds == 7200.0
    assert waiting.as_dict()["worst_case_seconds"] == plain.estimated_seconds + 7200.0
