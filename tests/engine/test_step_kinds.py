"""Step kinds know themselves: one model class and one registered executor per kind.

A step of a class the engine has no executor for is a typed error when run (it used to be
skipped silently); a kind without an executor fails the registry check the engine runs at
import; a new kind is validated against the MDF and planned from what its class declares,
with nothing added to validation or planning.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import pytest

from mdfd.daemons.analysis.planning import make_plan
from mdfd.daemons.analysis.validation import check
from mdfd.daemons.core.clock import EngineClock
from mdfd.daemons.core.config import load_config
from mdfd.daemons.engine.acquisition import Acquisition
from mdfd.daemons.engine.events import EventBus
from mdfd.daemons.engine.instruments import Instruments
from mdfd.daemons.engine.steps import (
    EXECUTORS,
    StepContext,
    UnknownStep,
    check_executors,
    executes,
    run_step,
)
from mdfd.recipes.loader import load_recipe
from mdfd.recipes.located import PathKey
from mdfd.recipes.steps import (
    STEP_MODELS,
    ChannelUse,
    Estimate,
    Given,
    SetStep,
    StepModel,
)
from mdfd.recipes.sweeps import Point
from mdfd.recipes.values import SetValue, StepValue, value_for

from .conftest import write_config, write_recipe


class Hold(StepModel):
    """A kind the engine does not know: write a setpoint and keep it for a minute."""

    kind: ClassVar[str] = "hold"
    hold: dict[str, SetValue]

    def uses(self) -> list[ChannelUse]:
        return [
            ChannelUse(name, ("hold", name), "write", (Given("setpoint", value, ("hold", name)),))
            for name, value in self.hold.items()
        ]

    def values(self) -> list[tuple[PathKey, StepValue]]:
        return [(("hold", name), value) for name, value in self.hold.items()]

    def estimate(self, point: Point, plan: Estimate) -> float:
        for name, value in self.hold.items():
            plan.last_written[name] = float(value_for(value, point, plan.recipe, plan.unit(name)))
        return 60.0


def test_every_step_kind_has_exactly_one_executor() -> None:
    assert set(EXECUTORS) == set(STEP_MODELS)
    check_executors(STEP_MODELS, EXECUTORS)


def test_a_kind_without_an_executor_fails_the_registry_check() -> None:
    with pytest.raises(TypeError, match="step kinds without an executor: hold"):
        check_executors((*STEP_MODELS, Hold), EXECUTORS)


def test_a_second_executor_for_a_kind_is_refused() -> None:
    before = EXECUTORS[SetStep]

    async def another(step: SetStep, ctx: StepContext) -> None:
        raise AssertionError("never registered")

    with pytest.raises(TypeError, match="'set' has two executors"):
        executes(SetStep)(another)
    assert EXECUTORS[SetStep] is before


def test_a_kind_without_an_estimate_cannot_be_built() -> None:
    """Planning cannot give a kind 0 s by forgetting it: its class must say how long it takes."""

    class Unplanned(StepModel):
        kind: ClassVar[str] = "unplanned"
        unplanned: int

        def uses(self) -> list[ChannelUse]:
            return []

        def values(self) -> list[tuple[PathKey, StepValue]]:
            return []

    with pytest.raises(TypeError, match="abstract method estimate"):
        Unplanned.model_validate({"unplanned": 1})


async def test_an_unknown_step_is_a_typed_error_when_run_and_writes_nothing(
    tmp_path: Path,
) -> None:
    config = load_config(write_config(tmp_path))
    recipe = load_recipe(write_recipe(tmp_path))
    clock = EngineClock(config.model.time_scale)
    instruments = Instruments(config.model, ["furnace", "meter"], clock.now)
    await instruments.connect()
    try:
        ctx = StepContext(
            recipe.model,
            config.model,
            instruments,
            clock,
            0,
            {"temperature": 200.0, "time": 1.0},
            Acquisition(None, instruments, EventBus()),
            lambda: None,
        )
        step = Hold.model_validate({"hold": {"furnace.setpoint": 500}})
        with pytest.raises(UnknownStep, match="no executor for step kind 'hold'"):
            await run_step(step, ctx)
        reading = (await instruments.reader(["furnace.setpoint"]).read())[0]
        assert reading.value == 25  # the configured initial value: nothing was written
    finally:
        await instruments.close()


def test_a_new_kind_is_validated_and_planned_from_its_class(tmp_path: Path) -> None:
    """Validation checks the channel and limits it declares; planning adds its estimate."""
    config = load_config(write_config(tmp_path))
    loaded = load_recipe(write_recipe(tmp_path))
    hot = Hold.model_validate({"hold": {"furnace.setpoint": "2000 degC"}})
    unknown = Hold.model_validate({"hold": {"furnace.nothing": 1}})
    steps = [hot, unknown, *loaded.model.steps]
    with_hold = dataclasses.replace(loaded, model=loaded.model.model_copy(update={"steps": steps}))

    messages = [(p.field, p.message) for p in check(with_hold, config)]
    assert messages == [
        (
            "steps[0].hold.furnace.setpoint",
            "point 0 (temperature=200, time=1) writes 2000 to 'furnace.setpoint', "
            "outside its limits [0.0, 1400.0] degC",
        ),
        ("steps[1].hold.furnace.nothing", "instrument 'furnace' has no channel 'nothing'"),
    ]

    fine = Hold.model_validate({"hold": {"meter.specimen": 2}})
    with_fine = dataclasses.replace(
        loaded, model=loaded.model.model_copy(update={"steps": [fine, *loaded.model.steps]})
    )
    assert check(with_fine, config) == []
    plain, planned = make_plan(loaded, config), make_plan(with_fine, config)
    assert [p.estimated_seconds for p in planned.points] == pytest.approx(
        [p.estimated_seconds + 60 for p in plain.points]
    )
