"""The page's JavaScript ships inside the package, exactly the recorded versions."""

from __future__ import annotations

import hashlib
import json
import tomllib
from importlib import resources
from pathlib import Path

from tests.support import REPO

STATIC = resources.files("mdfd.daemons.serve.web") / "static"


def test_vendored_files_match_their_recorded_checksums() -> None:
    record = json.loads((STATIC / "VENDORED.json").read_text())
    assert {f["package"] for f in record["files"].values()} == {"htmx.org", "uplot"}
    for name, entry in record["files"].items():
        digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()
        assert digest == entry["sha256"], (
            f"{name} differs from {entry['package']} {entry['version']}"
        )


def test_templates_and_static_files_are_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    tool = config["tool"]["setuptools"]
    assert "mdfd.daemons.serve.web" in tool["packages"]
    globs = tool["package-data"]["mdfd.daemons.serve.web"]
    package = REPO / "daemons" / "serve" / "web"
    shipped = {p for g in globs for p in package.glob(g)}
    wanted = {p for p in (package / "static").iterdir()} | set(package.glob("templates/*"))
    assert wanted <= shipped


def test_the_page_loads_nothing_from_elsewhere() -> None:
    templates = Path(str(resources.files("mdfd.daemons.serve.web") / "templates"))
    for template in templates.glob("*.html"):
        text = template.read_text()
        assert "http://" not in text, template.name
        assert "https://" not in text, template.name
