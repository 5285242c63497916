"""The distribution: a wheel built offline holds every package of the four folders under the
PEP 420 namespace `mdfd` (and no `mdfd/__init__.py`), the example recipes and the entry points;
installed alone it runs `mdfd`. The import rules of DESIGN.md hold (import-linter)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support import REPO

FOLDERS = {"daemons", "drivers", "recipes", "simulators"}


def source_modules() -> set[str]:
    """Wheel paths of every module the source folders hold in a package (an __init__.py dir)."""
    out = set()
    for folder in FOLDERS:
        for module in (REPO / folder).rglob("*.py"):
            if (module.parent / "__init__.py").exists() and "__pycache__" not in module.parts:
                out.add(f"mdfd/{module.relative_to(REPO).as_posix()}")
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build from a copy of the tree: setuptools writes build/ and *.egg-info beside the
    sources, and others may be building or editing in the work tree at the same time."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "*.pyc")
    for folder in FOLDERS:
        shutil.copytree(REPO / folder, source / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    out = root / "dist"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["--no-index", "--disable-pip-version-check", "-q", "-w", str(out), str(source)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = out.glob("mdfd-*.whl")
    return built


def test_wheel_holds_every_package_module_under_the_namespace(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = source_modules() - names
    assert not missing, f"modules not in the wheel (add their package to pyproject): {missing}"
    for folder in FOLDERS:
        assert f"mdfd/{folder}/__init__.py" in names
    assert "mdfd/__init__.py" not in names, "mdfd is a PEP 420 namespace"
    assert not [n for n in names if n.startswith(("tests/", "bench/", "daemons/", "recipes/"))]


def test_wheel_ships_the_example_recipes(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    examples = {f"mdfd/recipes/examples/{p.name}" for p in (REPO / "recipes/examples").glob("*")}
    assert examples
    assert examples <= names


def test_wheel_declares_scripts_and_plugin_groups(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        [entry_points] = [
            n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")
        ]
        text = archive.read(entry_points).decode()
    assert "mdfd = mdfd.daemons.cli.mdfd:main" in text
    assert "mdfctl = " in text
    for line in (
        "memory = mdfd.drivers.memory:MemoryDriver",
        "modbus = mdfd.drivers.modbus:ModbusDriver",
        "opcua = mdfd.drivers.opcua:OpcUaDriver",
        "visa = mdfd.drivers.visa:VisaDriver",
        "furnace = mdfd.simulators.furnace:FurnaceSimulator",
    ):
        assert line in text


def test_installed_wheel_alone_plans_an_example(wheel: Path, tmp_path: Path) -> None:
    """Imports come from the wheel (PYTHONPATH precedes the editable install's finder)."""
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    example = target / "mdfd/recipes/examples/metal-annealing.yaml"
    env = {**os.environ, "PYTHONPATH": str(target)}
    argv = ["plan", str(example), "--config", str(REPO / "config/sim.yaml"), "--json"]
    probe = (
        "import sys, mdfd.recipes, mdfd.daemons.cli.mdfd as cli\n"
        "print(cli.__file__)\n"
        f"sys.exit(cli.main({argv!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    first, plan = done.stdout.split("\n", 1)
    assert Path(first).is_relative_to(target)
    assert '"count": 10' in plan


def test_import_contracts_hold() -> None:
    linter = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    done = subprocess.run(
        [linter], cwd=REPO, capture_output=True, text=True, timeout=110, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
