"""The MDF configuration and the vocabulary: the embedded default loads, the environment fills
in what the file must not hold, typos are refused with their line, and the official item list
loads as just another vocabulary file of the same form."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from mdfd.daemons.cli.mdfd import main
from mdfd.daemons.core.config import load_config
from mdfd.daemons.core.vocabulary import load_vocabulary
from mdfd.recipes.located import InputError
from mdfd.recipes.model import Category
from tests.support import EXAMPLES, SIM_CONFIG

VOCABULARY = SIM_CONFIG.parent / "vocabulary.yaml"
ENV = ("MDFD_VAR", "MDFD_FURNACE_PORT", "MDFD_REACTOR_PORT", "MDFD_METER_PORT", "MDFD_WEB_PORT")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*ENV, "MDFD_TEST_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_sim_config_loads_with_its_defaults(clean_env: pytest.MonkeyPatch) -> None:
    config = load_config(SIM_CONFIG).model
    assert config.mdf.id == "sim-mdf-01"
    assert config.mdf.served == ["chemistry", "metal", "ceramic", "textile"]
    assert set(config.instruments) == {"furnace", "reactor", "meter"}
    assert config.storage.data_dir == Path("var/sim-mdf-01/data")
    assert config.storage.control_socket == Path("var/sim-mdf-01/run/control.sock")
    assert config.vocabulary == VOCABULARY
    assert config.time_scale == 600
    assert {s.kind for s in config.simulators.values()} == {"furnace", "reactor", "meter"}
    assert [p.directory for p in config.upstream.publishers] == [Path("var/sim-mdf-01/spool")]
    # The demo shows the operator's page at once, on loopback only, without a login.
    assert config.web is not None
    assert (config.web.host, config.web.port, config.web.token_env) == ("127.0.0.1", 8470, None)
    furnace = config.instruments["furnace"].channels
    assert furnace["setpoint"].writable
    assert (furnace["setpoint"].limits.min, furnace["setpoint"].limits.max) == (0, 1400)
    assert not furnace["temperature"].writable
    for qualified, value in config.safety.safe_state.items():
        instrument, _, channel = qualified.partition(".")
        limits = config.instruments[instrument].channels[channel].limits
        assert limits is None or limits.contains(float(value)), qualified


def test_environment_moves_state_and_ports(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("MDFD_VAR", str(tmp_path))
    clean_env.setenv("MDFD_FURNACE_PORT", "25020")
    clean_env.setenv("MDFD_METER_PORT", "25025")
    config = load_config(SIM_CONFIG).model
    assert config.storage.state_dir == tmp_path / "sim-mdf-01" / "state"
    assert config.simulators["furnace"].port == 25020
    assert config.simulators["meter"].port == 25025
    assert "25025" in config.instruments["meter"].resource


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(SIM_CONFIG.parent.glob("*.yaml")) if p.name != "vocabulary.yaml"],
    ids=lambda p: p.name,
)
def test_every_shipped_config_loads(path: Path, clean_env: pytest.MonkeyPatch) -> None:
    config = load_config(path).model
    assert config.instruments
    assert load_vocabulary(config.vocabulary).items


def write_config(tmp_path: Path, text: str, name: str = "mdf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


MINIMAL = f"""
mdf: {{id: env-mdf, domain: textile, site: "${{MDFD_TEST_SITE:-KR-DEFAULT}}"}}
storage:
  data_dir: ${{MDFD_TEST_ROOT}}/data
  state_dir: ${{MDFD_TEST_ROOT}}/state-${{MDFD_TEST_SITE:-x}}
vocabulary: {VOCABULARY}
instruments:
  bath:
    driver: memory
    identity: "${{MDFD_TEST_IDENTITY:-}}"
    channels:
      temperature: {{unit: degC}}
"""


@pytest.mark.parametrize(
    ("env", "site", "state_dir", "identity"),
    [
        ({"MDFD_TEST_ROOT": "/srv/mdf"}, "KR-DEFAULT", "/srv/mdf/state-x", ""),
        (
            {"MDFD_TEST_ROOT": "/srv/mdf", "MDFD_TEST_SITE": "KR-ULSAN", "MDFD_TEST_IDENTITY": "a"},
            "KR-ULSAN",
            "/srv/mdf/state-KR-ULSAN",
            "a",
        ),
        # As in the shell, `:-` also replaces a variable that is set but empty.
        (
            {"MDFD_TEST_ROOT": "/srv/mdf", "MDFD_TEST_SITE": ""},
            "KR-DEFAULT",
            "/srv/mdf/state-x",
            "",
        ),
    ],
)
def test_env_substitution_with_and_without_defaults(
    env: dict[str, str],
    site: str,
    state_dir: str,
    identity: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MDFD_TEST_ROOT", "MDFD_TEST_SITE", "MDFD_TEST_IDENTITY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = load_config(write_config(tmp_path, MINIMAL)).model
    assert config.mdf.site == site
    assert config.storage.data_dir == Path("/srv/mdf/data")
    assert config.storage.state_dir == Path(state_dir)
    assert config.instruments["bath"].identity == identity


def test_every_unset_variable_is_reported_where_it_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MDFD_TEST_ROOT", raising=False)
    path = write_config(tmp_path, MINIMAL)
    with pytest.raises(InputError) as caught:
        load_config(path)
    assert [(p.line, p.field, p.message) for p in caught.value.problems] == [
        (3, "storage.data_dir", "environment variable MDFD_TEST_ROOT is not set"),
        (4, "storage.state_dir", "environment variable MDFD_TEST_ROOT is not set"),
    ]


def test_a_secret_comes_from_the_environment_never_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file names the variable; the value appears only in the loaded model."""
    monkeypatch.setenv("MDFD_TEST_ROOT", str(tmp_path))
    monkeypatch.setenv("MDFD_TEST_IDENTITY", "s3cret-token")
    path = write_config(tmp_path, MINIMAL.replace("MDFD_TEST_IDENTITY:-", "MDFD_TEST_IDENTITY"))
    loaded = load_config(path)
    assert loaded.model.instruments["bath"].identity == "s3cret-token"
    assert "s3cret-token" not in loaded.text


@pytest.mark.parametrize(
    ("old", "new", "line", "field"),
    [
        ("vocabulary:", "vocabluary:", 5, "vocabluary"),
        ("    identity:", "    identiy:", 9, "instruments.bath.identiy"),
        (
            "{unit: degC}",
            "{unit: degC, writeable: true}",
            11,
            "instruments.bath.channels.temperature.writeable",
        ),
        ("  data_dir:", "  data_dir_: /x\n  data_dir:", 3, "storage.data_dir_"),
    ],
)
def test_unknown_keys_are_refused_with_their_line(
    old: str, new: str, line: int, field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MDFD_TEST_ROOT", str(tmp_path))
    path = write_config(tmp_path, MINIMAL.replace(old, new, 1))
    with pytest.raises(InputError) as caught:
        load_config(path)
    assert [(p.source, p.line, p.field, p.message) for p in caught.value.problems] == [
        (str(path), line, field, "unknown key (not allowed here)")
    ]


# ---- vocabularies -------------------------------------------------------------------------

OFFICIAL_UNITS = {
    Category.RAW_MATERIALS: ["percent", "g", "nm", ""],
    Category.COMPOSITION: ["percent", "ppmw", "mol/L", "dimensionless"],
    Category.PROCESS: ["degC", "min", "bar", "L/min", "degC/min", "rpm", "h"],
    Category.PROPERTIES: ["nF", "HV", "MPa", "percent", "microohm*cm", "dimensionless", "GPa"],
}


def official_like_vocabulary(count: int = 145) -> dict[str, object]:
    """A vocabulary of the official list's size and form, items spread over the categories."""
    categories = list(Category)
    items = []
    for index in range(count):
        category = categories[index % 4]
        units = OFFICIAL_UNITS[category]
        unit = units[index % len(units)]
        item: dict[str, object] = {
            "code": f"K{category.name[:3]}_{index:03d}",
            "category": category.value,
            "name": f"Official item {index}",
            "unit": unit,
            "type": "string" if unit == "" else "float",
            "domains": [["chemistry", "metal", "ceramic", "textile"][index % 4]],
        }
        if unit:
            item["range"] = [0, 10_000]
        items.append(item)
    return {"vocabulary": {"name": "official-145", "version": "2022.1"}, "items": items}


def write_vocabulary(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "official.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_the_default_vocabulary_covers_every_category_and_domain() -> None:
    vocabulary = load_vocabulary(VOCABULARY)
    assert {item.category for item in vocabulary.items} == set(Category)
    domains = {domain for item in vocabulary.items for domain in item.domains}
    assert domains == {"chemistry", "metal", "ceramic", "textile"}


def test_an_official_size_vocabulary_loads(tmp_path: Path) -> None:
    vocabulary = load_vocabulary(write_vocabulary(tmp_path, official_like_vocabulary()))
    assert len(vocabulary.items) == 145
    assert vocabulary.vocabulary.name == "official-145"
    counts = {c: sum(1 for i in vocabulary.items if i.category is c) for c in Category}
    assert sorted(counts.values()) == [36, 36, 36, 37]


def test_a_config_pointed_at_another_vocabulary_validates_against_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = official_like_vocabulary()
    vocabulary = write_vocabulary(tmp_path, data)
    config = tmp_path / "sim-official.yaml"
    config.write_text(
        SIM_CONFIG.read_text().replace("vocabulary: vocabulary.yaml", f"vocabulary: {vocabulary}")
    )
    codes = {
        item["unit"]: item["code"] for item in data["items"] if item["category"] == "properties"
    }
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        textwrap.dedent(
            f"""
            recipe: {{name: official, version: "1"}}
            sweep:
              parameters:
                temperature: {{unit: degC, values: [1100, 1200]}}
            steps:
              - ramp: {{channel: furnace.setpoint, to: temperature, rate: 5}}
              - acquire: {{channels: [meter.capacitance, meter.hardness], rate: 1, count: 5}}
            record:
              properties:
                - {{code: {codes["nF"]}, from: meter.capacitance}}
                - {{code: {codes["HV"]}, from: meter.hardness}}
            """
        ).lstrip()
    )
    assert main(["validate", str(recipe), "--config", str(config)]) == 0
    capsys.readouterr()
    # The example recipes speak the default vocabulary: under the official one, their codes
    # are unknown, and each is named at its line.
    example = EXAMPLES / "ceramic-mlcc-sintering.yaml"
    assert main(["validate", str(example), "--config", str(config)]) == 2
    problems = capsys.readouterr().err.splitlines()
    unknown = "materials.raw_materials[0].code: 'RM_BATIO3_PURITY' is not in the vocabulary"
    assert f"{example}:13: {unknown}" in problems
    assert len(problems) == 11


def test_duplicate_vocabulary_codes_are_refused_at_their_line(tmp_path: Path) -> None:
    data = official_like_vocabulary(10)
    data["items"][7]["code"] = data["items"][2]["code"]
    path = write_vocabulary(tmp_path, data)
    items_at = [n for n, text in enumerate(path.read_text().splitlines(), 1) if "- code:" in text]
    with pytest.raises(InputError) as caught:
        load_vocabulary(path)
    [problem] = caught.value.problems
    assert (problem.source, problem.line, problem.field) == (
        str(path),
        items_at[7],
        "items[7].code",
    )
    assert problem.message == f"duplicate item code {data['items'][2]['code']} (first: items[2])"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"category": "processes"}, "items[3].category", "'raw_materials', 'composition'"),
        ({"unit": "furlongs_per_fortnight"}, "items[3].unit", "unknown unit"),
        ({"code": "lower_case"}, "items[3].code", "should match pattern"),
        ({"typo": 1}, "items[3].typo", "unknown key"),
    ],
)
def test_malformed_vocabulary_items_are_located(
    change: dict[str, object], field: str, message: str, tmp_path: Path
) -> None:
    data = official_like_vocabulary(6)
    data["items"][3].update(change)
    path = write_vocabulary(tmp_path, data)
    with pytest.raises(InputError) as caught:
        load_vocabulary(path)
    [problem] = caught.value.problems
    assert problem.field == field
    assert message in problem.message
    key = field.rsplit(".", 1)[1]
    assert f"{key}:" in path.read_text().splitlines()[problem.line - 1]
