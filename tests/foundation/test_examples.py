"""The example recipes: one per domain, each valid on config/sim.yaml, planned as expected, and
described by the JSON Schema that `mdfd schema` gives editors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from mdfd.daemons.cli.mdfd import main
from tests.support import EXAMPLES, SIM_CONFIG, mdfd

RECIPES = sorted(EXAMPLES.glob("*.yaml"))
CERAMIC = EXAMPLES / "ceramic-mlcc-sintering.yaml"
CHEMISTRY = EXAMPLES / "chemistry-olefin-catalyst.yaml"
METAL = EXAMPLES / "metal-annealing.yaml"
TEXTILE = EXAMPLES / "textile-reactive-dyeing.yaml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def plan(capsys: pytest.CaptureFixture[str], recipe: Path) -> dict[str, Any]:
    code, out, err = run(capsys, "plan", str(recipe), "--config", str(SIM_CONFIG), "--json")
    assert (code, err) == (0, "")
    return json.loads(out)


def parameters(planned: dict[str, Any]) -> list[tuple[float, ...]]:
    return [tuple(p["parameters"].values()) for p in planned["points"]]


def test_there_is_one_example_per_domain() -> None:
    domains = {yaml.safe_load(path.read_text())["recipe"]["domain"] for path in RECIPES}
    assert domains == {"ceramic", "chemistry", "metal", "textile"}
    adaptive = {
        EXAMPLES / "ceramic-mlcc-adaptive.yaml",
        EXAMPLES / "chemistry-olefin-adaptive.yaml",
    }
    assert {CERAMIC, CHEMISTRY, METAL, TEXTILE} | adaptive == set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_example_validates_on_the_simulated_mdf(
    recipe: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "validate", str(recipe), "--config", str(SIM_CONFIG))
    assert (code, err) == (0, "")
    assert out.startswith(f"{recipe}: ok")
    assert "fits sim-mdf-01" in out


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_example_records_every_category(recipe: Path) -> None:
    data = yaml.safe_load(recipe.read_text())
    for section in ("raw_materials", "composition"):
        assert data["materials"][section], section
    for section in ("process", "properties"):
        assert data["record"][section], section


def test_ceramic_plan_is_serpentine_with_exact_estimates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    planned = plan(capsys, CERAMIC)
    assert planned["count"] == 6
    assert parameters(planned) == [
        (1180, 60),
        (1180, 180),
        (1240, 180),
        (1240, 60),
        (1300, 60),
        (1300, 180),
    ]
    # Point 0: ramp 25 -> 1180 degC at 5 degC/min (231 min), hold 5 min, dwell 60 min,
    # acquire 5 min. Point 1 stays at 1180: no ramp, dwell 180 min.
    estimates = [p["estimated_seconds"] for p in planned["points"]]
    assert estimates[0] == pytest.approx((231 + 5 + 60 + 5) * 60)
    assert estimates[1] == pytest.approx((5 + 180 + 5) * 60)
    assert estimates[2] == pytest.approx((12 + 5 + 180 + 5) * 60)
    assert planned["estimated_seconds"] == pytest.approx(sum(estimates))
    assert planned["time_scale"] == 600
    assert planned["estimated_wall_seconds"] == pytest.approx(sum(estimates) / 600)
    assert [p["index"] for p in planned["points"]] == list(range(6))


def test_chemistry_plan_snakes_through_three_parameters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    planned = plan(capsys, CHEMISTRY)
    assert planned["count"] == 12
    assert parameters(planned)[:9] == [
        (180, 10, 1.0),
        (180, 10, 2.5),
        (180, 20, 2.5),
        (180, 20, 1.0),
        (240, 20, 1.0),
        (240, 20, 2.5),
        (240, 10, 2.5),
        (240, 10, 1.0),
        (300, 10, 1.0),
    ]
    assert all(p["estimated_seconds"] > 0 for p in planned["points"])


def test_metal_plan_includes_the_end_of_its_range(capsys: pytest.CaptureFixture[str]) -> None:
    planned = plan(capsys, METAL)
    assert planned["count"] == 10
    temperatures = [t for t, _ in parameters(planned)]
    assert sorted(set(temperatures)) == [200, 250, 300, 350, 400]
    assert parameters(planned)[:3] == [(200, 15), (200, 60), (250, 60)]
    # 25 -> 200 degC at 10 degC/min, hold 2 min, dwell 15 min, 20 samples at 0.2/s.
    assert planned["points"][0]["estimated_seconds"] == pytest.approx(
        17.5 * 60 + 120 + 15 * 60 + 100
    )


def test_textile_latin_hypercube_is_stratified_and_reproducible(
    capsys: pytest.CaptureFixture[str],
) -> None:
    planned = plan(capsys, TEXTILE)
    assert planned["count"] == 8
    bounds = {"temperature": (40, 95), "ph": (3.5, 8.0), "time": (20, 90)}
    for name, (low, high) in bounds.items():
        values = [p["parameters"][name] for p in planned["points"]]
        strata = sorted(int((v - low) / (high - low) * 8) for v in values)
        assert strata == list(range(8)), name
    assert plan(capsys, TEXTILE) == planned
    assert all(p["estimated_seconds"] > 0 for p in planned["points"])


def test_plan_table_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", str(CERAMIC), "--config", str(SIM_CONFIG))
    assert code == 0
    assert "temperature [degC]" in out
    assert "6 points, at least 17h15m00s" in " ".join(out.split())


def test_plan_json_through_the_real_cli() -> None:
    done = mdfd("plan", str(METAL), "--config", str(SIM_CONFIG), "--json")
    assert done.returncode == 0, done.stderr
    planned = json.loads(done.stdout)
    assert planned["recipe"] == "copper-wire-annealing"
    assert planned["version"] == "1.1.0"
    assert planned["count"] == len(planned["points"]) == 10
    assert planned["estimated_seconds"] > 0


def schema(capsys: pytest.CaptureFixture[str], kind: str) -> dict[str, Any]:
    code, out, err = run(capsys, "schema", kind)
    assert (code, err) == (0, "")
    document = json.loads(out)
    Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    return document


def as_json(value: Any) -> Any:
    """What an editor validates: the YAML document as JSON."""
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_example_validates_against_the_recipe_schema(
    recipe: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    validator = Draft202012Validator(schema(capsys, "recipe"))
    errors = [e.message for e in validator.iter_errors(as_json(yaml.safe_load(recipe.read_text())))]
    assert errors == []


def test_recipe_schema_rejects_what_the_loader_rejects(capsys: pytest.CaptureFixture[str]) -> None:
    validator = Draft202012Validator(schema(capsys, "recipe"))
    recipe = yaml.safe_load(CERAMIC.read_text())
    recipe["sweep"]["order"] = "zigzag"
    recipe["steps"][0] = {"soak": "5 min"}
    recipe["recipe"]["typo"] = 1
    assert len(list(validator.iter_errors(as_json(recipe)))) == 3


def test_sim_config_validates_against_the_config_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As an editor sees the file: `${MDFD_FURNACE_PORT:-15020}` where a port number goes."""
    validator = Draft202012Validator(schema(capsys, "config"))
    raw = yaml.safe_load(SIM_CONFIG.read_text())
    assert [e.message for e in validator.iter_errors(as_json(raw))] == []
    raw["storage"]["data_dir_typo"] = "x"
    raw["instruments"]["furnace"]["channels"]["setpoint"]["writable"] = "maybe"
    assert len(list(validator.iter_errors(as_json(raw)))) == 2
