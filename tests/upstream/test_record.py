"""Records of the example recipes on the embedded sim MDF: valid against the published schema,
every mapped item present, values in the vocabulary's units."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest

from mdfd.daemons.core.config import load_config
from mdfd.daemons.core.stats import PointStats, Stats
from mdfd.daemons.core.vocabulary import load_vocabulary
from mdfd.daemons.engine.results import PointResult, RunContext
from mdfd.daemons.store import PointStatus
from mdfd.daemons.upstream.record import Record, RecordBuilder, record_id
from mdfd.recipes.loader import load_recipe
from tests.support import EXAMPLES, SIM_CONFIG

SCHEMA = Record.model_json_schema(by_alias=True)


def _result(recipe_path, stats_for) -> PointResult:
    config = load_config(SIM_CONFIG)
    recipe = load_recipe(recipe_path)
    point = recipe.model.points()[0]
    channels = recipe.model.acquired_channels()
    context = RunContext(
        "run-x",
        recipe,
        config,
        {"meter": "SIM,LCR"},
        "var/run-x.h5",
        {c: f"/entry/instrument/{c.replace('.', '/')}" for c in channels},
    )
    stats = PointStats.of({c: stats_for(c) for c in channels})
    return PointResult(context, 0, point, stats, 1.8e9, 1.8e9 + 60, PointStatus.COMPLETED)


@pytest.mark.parametrize("recipe", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_example_recipes_give_valid_records(recipe) -> None:
    result = _result(recipe, lambda c: Stats(10.0, 0.5, 9.0, 11.0, 20, 10.2))
    record = RecordBuilder(result.run.config.model.vocabulary).build(result)
    data = json.loads(record.to_json())
    jsonschema.validate(data, SCHEMA)

    model = result.run.recipe.model
    assert data["id"] == str(record_id("sim-mdf-01", "run-x", 0))
    assert [i["code"] for i in data["process"]] == [i.code for i in model.record.process]
    assert [i["code"] for i in data["properties"]] == [i.code for i in model.record.properties]
    assert [i["code"] for i in data["raw_materials"]] == [
        m.code for m in model.materials.raw_materials
    ]
    vocabulary = load_vocabulary(result.run.config.model.vocabulary).by_code()
    for section in ("raw_materials", "composition", "process", "properties"):
        for item in data[section]:
            assert item["unit"] == vocabulary[item["code"]].unit
            assert item["value"] is not None


def test_records_carry_both_domains_and_their_clock() -> None:
    """A copper anneal on the four-domain sim MDF: the recipe says metal, the MDF lists all
    four, and the times are the simulated clock (sim.yaml runs 600x the wall)."""
    result = _result(EXAMPLES / "metal-annealing.yaml", lambda c: Stats(1.0, 0.1, 0.9, 1.1, 3))
    record = RecordBuilder(result.run.config.model.vocabulary).build(result)
    data = json.loads(record.to_json())
    jsonschema.validate(data, SCHEMA)
    provenance = data["provenance"]
    assert provenance["recipe"]["domain"] == "metal"
    assert provenance["mdf"]["domains"] == ["chemistry", "metal", "ceramic", "textile"]
    assert "domain" not in provenance["mdf"]
    assert provenance["clock"] == "simulated"
    assert provenance["time_scale"] == result.run.config.model.time_scale


def test_offset_units_convert_values_but_not_spreads() -> None:
    """A channel in K mapped to a degC item: the mean shifts by 273.15, the std does not."""
    recipe = EXAMPLES / "metal-annealing.yaml"
    result = _result(recipe, lambda c: Stats(473.15, 2.0, 470.0, 476.0, 20, 473.0))
    config = result.run.config
    furnace = config.model.instruments["furnace"]
    channel = furnace.channels["temperature"].model_copy(update={"unit": "K"})
    instrument = furnace.model_copy(
        update={"channels": {**furnace.channels, "temperature": channel}}
    )
    model = config.model.model_copy(
        update={"instruments": {**config.model.instruments, "furnace": instrument}}
    )
    run = RunContext(
        result.run.run_id,
        result.run.recipe,
        config.model_copy(update={"model": model}),
        {},
        "x.h5",
        {},
    )
    moved = PointResult(run, 0, result.parameters, result.stats, 1.8e9, 1.8e9, result.status)
    record = RecordBuilder(config.model.vocabulary).build(moved)
    [furnace_mean] = [i for i in record.process if i.code == "PRC_FURNACE_TEMP_MEAN"]
    assert furnace_mean.unit == "degC"
    assert furnace_mean.value == pytest.approx(200.0)
    assert furnace_mean.std == pytest.approx(2.0)
    assert furnace_mean.n == 20


def test_a_channel_without_samples_gives_null_not_nan() -> None:
    nan = math.nan
    result = _result(EXAMPLES / "metal-annealing.yaml", lambda c: Stats(nan, nan, nan, nan, 0))
    record = RecordBuilder(result.run.config.model.vocabulary).build(result)
    data = json.loads(record.to_json())
    [hardness] = [i for i in data["properties"] if i["code"] == "PRP_VICKERS_HARDNESS"]
    assert hardness == {"code": "PRP_VICKERS_HARDNESS", "value": None, "unit": "HV", "n": 0}
