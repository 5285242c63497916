"""The type checker's configuration (docs/decisions/0055): `check_untyped_defs` everywhere, the
strict flags exactly for the driver contract, the engine and the state store, and every module
the configuration names still exists (a module moved away would silently lose its strictness)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support import REPO

FOLDERS = ("daemons", "drivers", "recipes", "simulators")
UNANNOTATED = "def passthrough(x):\n    return x\n"
ILL_TYPED_BODY = "def add(x):\n    return 1 + ''\n"


def mypy_on(tmp_path: Path, module: str, text: str) -> str:
    """mypy's report on `text` placed as `module` in an otherwise empty `mdfd/` tree, checked
    with the repository's configuration, as scripts/typecheck does."""
    path = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    config = ["--config-file", str(REPO / "pyproject.toml")]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            *config,
            "--cache-dir",
            str(tmp_path / "cache"),
            "-m",
            module,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout


@pytest.mark.parametrize(
    "module",
    [
        "mdfd.drivers.base",
        "mdfd.daemons.engine.runner",
        "mdfd.daemons.store.database",
        "mdfd.daemons.store.schema",
        "mdfd.daemons.serve.runqueue",
        "mdfd.daemons.store.outbox",
    ],
)
def test_the_named_modules_are_checked_strictly(tmp_path: Path, module: str) -> None:
    assert "[no-untyped-def]" in mypy_on(tmp_path, module, UNANNOTATED)


def test_other_modules_are_not_strict_but_their_untyped_bodies_are_checked(
    tmp_path: Path,
) -> None:
    assert "Success" in mypy_on(tmp_path / "a", "mdfd.daemons.cli.mdfd", UNANNOTATED)
    report = mypy_on(tmp_path / "b", "mdfd.daemons.cli.mdfd", ILL_TYPED_BODY)
    assert "[operator]" in report


def test_every_module_the_configuration_names_exists() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    named = [
        module
        for override in config["overrides"]
        for module in override["module"]
        if module.startswith("mdfd.")
    ]
    missing = []
    for module in named:
        folder, *rest = module.removeprefix("mdfd.").removesuffix(".*").split(".")
        assert folder in FOLDERS, module
        path = REPO.joinpath(folder, *rest)
        if not (path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()):
            missing.append(module)
    assert named
    assert missing == []


def test_the_type_check_covers_the_benchmarks(tmp_path: Path) -> None:
    """scripts/typecheck, run on a copy of the repository whose packages are empty and whose
    bench/ has an ill-typed body in an unannotated function, reports that body."""
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "typecheck"
    script.write_bytes((REPO / "scripts" / "typecheck").read_bytes())
    script.chmod(0o755)
    (tmp_path / "pyproject.toml").write_bytes((REPO / "pyproject.toml").read_bytes())
    for folder in (*FOLDERS, "bench"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "bench" / "engine.py").write_text(ILL_TYPED_BODY)
    result = subprocess.run(
        [str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert "bench/engine.py:2: error" in result.stdout
    assert "[operator]" in result.stdout
