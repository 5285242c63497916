"""Step values are parsed once, at load, into a parameter reference, a quantity or a literal.

The recipe's written form does not change (`to: temperature`, `rate: 5 degC/min`); what the
model holds is the parsed form, which dumps back to the written one.
"""

from __future__ import annotations

import textwrap

import pytest
import yaml

from mdfd.recipes.loader import load_recipe
from mdfd.recipes.located import InputError
from mdfd.recipes.steps import STEP_KINDS, RampStep, SetStep, StableStep
from mdfd.recipes.values import LiteralValue, ParameterRef, Quantity, duration_for, value_for
from tests.support import EXAMPLES

RECIPE = """
recipe: {name: t, version: "1"}
sweep:
  parameters:
    temperature: {unit: degC, values: [100, 200]}
    hold: {unit: min, values: [1]}
steps:
  - set: {furnace.running: true, furnace.setpoint: 20, furnace.power: "1.5 kW"}
  - ramp: {channel: furnace.setpoint, to: temperature, rate: 5 degC/min}
  - wait_until_stable:
      {channel: furnace.temperature, target: 300.5, tolerance: 1, hold: hold, timeout: 2 h}
  - dwell: 30
"""


def test_values_are_parsed_into_the_tagged_union_at_load() -> None:
    model = load_recipe("r.yaml", text=RECIPE).model
    set_step, ramp, stable = model.steps[0], model.steps[1], model.steps[2]
    assert isinstance(set_step, SetStep)
    assert set_step.set == {
        "furnace.running": LiteralValue(True),
        "furnace.setpoint": LiteralValue(20),
        "furnace.power": Quantity(1.5, "kW", "1.5 kW"),
    }
    assert isinstance(ramp, RampStep)
    assert ramp.ramp.to == ParameterRef("temperature")
    assert ramp.ramp.rate == Quantity(5.0, "degC/min", "5 degC/min")
    assert isinstance(stable, StableStep)
    assert stable.wait_until_stable.hold == ParameterRef("hold")
    assert duration_for(stable.wait_until_stable.hold, {"hold": 1.0}, model) == 60.0
    assert duration_for(stable.wait_until_stable.timeout, {}, model) == 7200.0
    assert value_for(ramp.ramp.to, {"temperature": 100.0}, model, "K") == pytest.approx(373.15)
    assert value_for(set_step.set["furnace.power"], {}, model, "W") == pytest.approx(1500.0)


def test_the_parsed_recipe_dumps_back_to_its_written_form() -> None:
    written = yaml.safe_load(RECIPE)
    dumped = load_recipe("r.yaml", text=RECIPE).model.model_dump(mode="json", exclude_defaults=True)
    assert dumped["steps"] == written["steps"]


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_round_trips_through_the_parsed_form(example: object) -> None:
    loaded = load_recipe(example)  # type: ignore[arg-type]
    again = load_recipe("again.yaml", text=yaml.safe_dump(loaded.model.model_dump(mode="json")))
    assert again.model == loaded.model


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5 degX/min", "unknown unit 'degX/min'"),
        ("fast please", "cannot read 'fast please' as a quantity"),
        ("true", None),  # a name: the parameter check reports it, not the parser
    ],
)
def test_a_value_that_is_no_quantity_is_refused_at_load_where_it_is(
    value: str, message: str | None
) -> None:
    text = RECIPE.replace("rate: 5 degC/min", f"rate: {value!r}")
    with pytest.raises(InputError) as caught:
        load_recipe("r.yaml", text=text)
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (9, "steps[1].ramp.rate")
    assert message is None or message in problem.message


def test_a_step_of_no_known_kind_is_refused_at_load_naming_the_kinds() -> None:
    text = RECIPE + "  - soak: 30 min\n"
    with pytest.raises(InputError) as caught:
        load_recipe("r.yaml", text=text)
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (13, "steps[4]")
    assert problem.message == f"a step is a mapping with exactly one of: {', '.join(STEP_KINDS)}"
    assert STEP_KINDS == ("set", "ramp", "wait_until_stable", "dwell", "acquire")


def test_a_boolean_is_a_value_only_in_a_set() -> None:
    text = RECIPE.replace("to: temperature", "to: true")
    with pytest.raises(InputError, match=r"r.yaml:9: steps\[1\].ramp.to: expected a number"):
        load_recipe("r.yaml", text=textwrap.dedent(text))


@pytest.mark.parametrize(
    ("dwell", "message"),
    [
        ("5 blorps", "unknown unit 'blorps'"),
        ("5 parsec", "cannot convert 'parsec' to 'second'"),
        ("30", "'30' is neither a duration (e.g. '30 min') nor a parameter name"),
        ("5 m/s", "'5 m/s' is neither a duration (e.g. '30 min') nor a parameter name"),
        ("-5 min", "'-5 min' is not a non-negative duration"),
        (-5, "a duration cannot be negative"),
    ],
)
def test_a_duration_says_what_is_wrong_with_it(dwell: object, message: str) -> None:
    text = RECIPE.replace("dwell: 30", f"dwell: {dwell!r}")
    with pytest.raises(InputError) as caught:
        load_recipe("r.yaml", text=text)
    [problem] = caught.value.problems
    assert (problem.line, problem.field, problem.message) == (12, "steps[3].dwell", message)
