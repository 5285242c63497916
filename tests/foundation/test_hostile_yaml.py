"""Hostile YAML: every file the tools read is bounded, and refused with exit 2 and a location.

Each case here once froze a daemon, ran a CLI out of memory or ended in a traceback: alias bombs,
nesting deeper than Python's stack, huge lists, a 20,000-character unit, control characters that
no file name or HDF5 attribute can hold, a vocabulary that is /dev/zero. Most run in-process
through `mdfd validate`; the alias bomb runs as a real process, bounded by the subprocess
timeout, because before the fix it never finished.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mdfd.daemons.cli.mdfd import main
from tests.support import SIM_CONFIG, mdfd

RECIPE = textwrap.dedent(
    """
    recipe: {name: t, version: "1"}
    sweep:
      parameters:
        temperature: {unit: degC, values: [100, 200]}
    steps:
      - ramp: {channel: furnace.setpoint, to: temperature, rate: 5}
      - acquire: {channels: [meter.loss], rate: 1, count: 3}
    """
).lstrip()


def alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def validate(capsys: pytest.CaptureFixture[str], recipe: Path, config: Path) -> tuple[int, str]:
    code = main(["validate", str(recipe), "--config", str(config)])
    return code, capsys.readouterr().err


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def sim_config_with(tmp_path: Path, old: str, new: str) -> Path:
    text = SIM_CONFIG.read_text(encoding="utf-8")
    assert old in text
    text = text.replace(old, new, 1).replace(
        "vocabulary: vocabulary.yaml", f"vocabulary: {SIM_CONFIG.parent / 'vocabulary.yaml'}"
    )
    return write(tmp_path, "mdf.yaml", text)


def test_an_alias_bomb_recipe_is_refused_at_its_line(tmp_path: Path) -> None:
    recipe = write(tmp_path, "bomb.yaml", alias_bomb())
    done = mdfd("validate", str(recipe), "--config", str(SIM_CONFIG), timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"{recipe}:6: a5[0]: more than 100000 nodes")
    assert "Traceback" not in done.stderr


def test_an_alias_bomb_config_is_refused_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SIM_CONFIG.read_text() + "x-bomb:\n" + _indent(alias_bomb())
    config = write(tmp_path, "mdf.yaml", text)
    code, stderr = validate(capsys, write(tmp_path, "r.yaml", RECIPE), config)
    assert code == 2
    assert stderr.startswith(f"{config}:")
    assert "x-bomb.a5[0]: more than 100000 nodes" in stderr


def _indent(text: str) -> str:
    return textwrap.indent(text, "  ")


@pytest.mark.parametrize(
    "nested",
    [
        "x: " + "[" * 5000 + "]" * 5000 + "\n",
        "x: " + "{a: " * 5000 + "v" + "}" * 5000 + "\n",
        "- " * 3000 + "v\n",
    ],
    ids=["flow-sequence", "flow-mapping", "block-sequence"],
)
def test_nesting_beyond_the_bound_is_located_not_a_recursion_error(
    nested: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write(tmp_path, "deep.yaml", nested)
    code, stderr = validate(capsys, recipe, SIM_CONFIG)
    assert code == 2
    assert stderr.startswith(f"{recipe}:1: ")
    assert "nest" in stderr
    assert "RecursionError" not in stderr


def test_a_huge_list_is_refused_at_the_item_that_crosses_the_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write(tmp_path, "list.yaml", "x: [" + ", ".join(["1"] * 150_000) + "]\n")
    code, stderr = validate(capsys, recipe, SIM_CONFIG)
    assert code == 2
    assert stderr == f"{recipe}:1: x[99997]: more than 100000 nodes (aliases expanded)\n"


def test_a_file_larger_than_the_bound_is_refused_before_it_is_parsed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write(tmp_path, "big.yaml", RECIPE + "# " + "x" * 2_000_000 + "\n")
    code, stderr = validate(capsys, recipe, SIM_CONFIG)
    assert code == 2
    assert stderr == f"{recipe}: (document): larger than 1048576 bytes\n"


def test_a_20000_character_unit_is_refused_by_its_length(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = RECIPE.replace("unit: degC", "unit: " + "m*" * 10_000 + "m")
    code, stderr = validate(capsys, write(tmp_path, "unit.yaml", text), SIM_CONFIG)
    assert code == 2
    assert ":4: sweep.parameters.temperature.unit: String should have at most 64" in stderr


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('version: "1"', 'version: "1\\0"', "recipe.version"),
        ('version: "1"', 'version: "1\\e[2J"', "recipe.version"),
        ("rate: 5}", 'rate: "5 degC/min\\0"}', "steps[0].ramp.rate"),
    ],
    ids=["nul-version", "escape-version", "nul-rate"],
)
def test_control_characters_in_a_recipe_are_refused(
    old: str, new: str, field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write(tmp_path, "ctl.yaml", RECIPE.replace(old, new))
    code, stderr = validate(capsys, recipe, SIM_CONFIG)
    assert code == 2
    assert stderr.startswith(f"{recipe}:")
    assert f": {field}: contains a control character" in stderr


def test_a_nul_in_the_data_dir_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = sim_config_with(
        tmp_path, "data_dir: ${MDFD_VAR:-var}/sim-mdf-01/data", 'data_dir: "/tmp/da\\0ta"'
    )
    code, stderr = validate(capsys, write(tmp_path, "r.yaml", RECIPE), config)
    assert code == 2
    assert stderr.startswith(f"{config}:11: storage.data_dir: contains a control character")


@pytest.mark.parametrize(
    "data_dir", ["/tmp/" + "d" * 300, "/tmp/" + "/".join(["d" * 200] * 25)], ids=["name", "path"]
)
def test_a_data_dir_the_file_system_cannot_hold_is_refused(
    data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = sim_config_with(
        tmp_path, "data_dir: ${MDFD_VAR:-var}/sim-mdf-01/data", f"data_dir: {data_dir}"
    )
    code, stderr = validate(capsys, write(tmp_path, "r.yaml", RECIPE), config)
    assert code == 2
    assert stderr.startswith(f"{config}:11: storage.data_dir: path too long for the file system")


def test_a_300_character_recipe_name_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write(tmp_path, "long.yaml", RECIPE.replace("name: t,", f"name: {'n' * 300},"))
    code, stderr = validate(capsys, recipe, SIM_CONFIG)
    assert code == 2
    assert stderr.startswith(f"{recipe}:1: recipe.name: String should have at most 64 characters")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_vocabulary_that_is_a_device_is_refused_unread(
    device: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = sim_config_with(tmp_path, "vocabulary: vocabulary.yaml", f"vocabulary: {device}")
    code, stderr = validate(capsys, write(tmp_path, "r.yaml", RECIPE), config)
    assert code == 2
    assert stderr == f"{device}: (document): not a regular file\n"


def test_the_point_count_is_bounded_per_mdf_before_points_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`limits.max_points` is the MDF's; the count comes from the sweep's definition."""
    config = sim_config_with(tmp_path, "simulation:", "limits: {max_points: 3}\nsimulation:")
    recipe = write(tmp_path, "r.yaml", RECIPE.replace("values: [100, 200]", "values: [1, 2, 3, 4]"))
    code, stderr = validate(capsys, recipe, config)
    assert code == 2
    assert stderr == (
        f"{recipe}:2: sweep: the sweep has 4 points; this MDF allows 3 (limits.max_points)\n"
    )
    huge = "linspace: {start: 100, stop: 200, num: 1000000}"
    text = RECIPE.replace("values: [100, 200]", huge).replace(
        "parameters:\n", f"parameters:\n    pressure: {{unit: bar, {huge}}}\n"
    )
    code, stderr = validate(capsys, write(tmp_path, "huge.yaml", text), SIM_CONFIG)
    assert code == 2
    assert "the sweep has 1000000000000 points; at most 1000000 are allowed" in stderr
