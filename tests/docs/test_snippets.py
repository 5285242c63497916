"""The documentation's snippets are executed, so they cannot drift from the code.

Every YAML block in `docs/` and the README is validated by the model it illustrates (a recipe, a
vocabulary, or a fragment of an MDF config merged into `config/sim.yaml`); every `mdfd`/`mdfctl`
command line in a shell block must parse with the real command-line parsers; and the README's
Quick start runs, verbatim but for the virtual environment's path, end to end.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mdfd.daemons.cli import mdfctl as ctl
from mdfd.daemons.cli import mdfd as cli
from mdfd.daemons.core.config import MdfConfig, load_config
from mdfd.daemons.core.vocabulary import Vocabulary
from mdfd.recipes.loader import load_recipe
from mdfd.recipes.model import Recipe
from tests.support import REPO, SIM_CONFIG, mdfd, retry_port_race, sim_env

DOCS = [*sorted((REPO / "docs").rglob("*.md")), REPO / "README.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
CONFIG_SECTIONS = set(MdfConfig.model_fields)
RECIPE_SECTIONS = set(Recipe.model_fields)
EXAMPLE_RECIPE = REPO / "recipes" / "examples" / "metal-annealing.yaml"


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int
    language: str
    text: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def snippets(*languages: str) -> list[Snippet]:
    out = []
    for path in DOCS:
        text = path.read_text()
        for match in FENCE.finditer(text):
            if match.group(1) in languages:
                line = text.count("\n", 0, match.start()) + 2
                out.append(Snippet(path, line, match.group(1), match.group(2)))
    return out


def command_lines(snippet: Snippet) -> list[list[str]]:
    """`mdfd`/`mdfctl` invocations in a shell or console block, comments and `$ ` removed."""
    commands = []
    for raw in snippet.text.replace("\\\n", " ").splitlines():
        line = raw.removeprefix("$ ").split(" #", 1)[0].strip().rstrip("&").strip()
        for part in re.split(r"&&|;|\|", line):
            words = shlex.split(part, comments=True)
            if words and Path(words[0]).name in ("mdfd", "mdfctl"):
                commands.append([Path(words[0]).name, *words[1:]])
    return commands


YAML_SNIPPETS = snippets("yaml", "yml")
COMMANDS = [
    pytest.param(words, id=f"{snippet}:{' '.join(words[:3])}")
    for snippet in snippets("sh", "bash", "console", "shell")
    for words in command_lines(snippet)
]


def merged_into_sim_config(fragment: dict[str, Any]) -> dict[str, Any]:
    """A config fragment in a page shows one section: it must validate inside a whole config."""
    base = yaml.safe_load(SIM_CONFIG.read_text())
    for key, value in fragment.items():
        if key == "instruments":
            base["instruments"] = {**base["instruments"], **value}
        else:
            base[key] = value
    base["vocabulary"] = str(SIM_CONFIG.parent / "vocabulary.yaml")
    return base


@pytest.mark.parametrize("snippet", YAML_SNIPPETS, ids=str)
def test_yaml_snippet_validates(snippet: Snippet, tmp_path: Path, monkeypatch) -> None:
    for name in ("MDFD_API_TOKEN", "MDFD_HTTP_TOKEN", "MDFD_MQTT_PASSWORD", "MDFD_ROOT"):
        monkeypatch.setenv(name, "documentation-example")
    data = yaml.safe_load(snippet.text)
    assert isinstance(data, dict), f"{snippet}: a YAML example is a mapping"
    if "recipe" in data:
        path = tmp_path / "recipe.yaml"
        path.write_text(snippet.text)
        load_recipe(path)
    elif "items" in data:
        Vocabulary.model_validate(data)
    elif set(data) <= RECIPE_SECTIONS:
        # A recipe section shown alone must validate inside a whole recipe.
        recipe = {**yaml.safe_load(EXAMPLE_RECIPE.read_text()), **data}
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe))
        load_recipe(path)
    else:
        unknown = set(data) - CONFIG_SECTIONS
        assert not unknown, f"{snippet}: not a recipe, vocabulary or config section: {unknown}"
        path = tmp_path / "mdf.yaml"
        path.write_text(yaml.safe_dump(merged_into_sim_config(data)))
        load_config(path)


@pytest.mark.parametrize("words", COMMANDS)
def test_documented_command_parses(words: list[str]) -> None:
    parser = cli.build_parser() if words[0] == "mdfd" else ctl.build_parser()
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = parser.parse_args(words[1:])
    except SystemExit as exc:
        if exc.code == 0:  # --help, --version
            return
        pytest.fail(f"{' '.join(words)} does not parse: {stderr.getvalue()} (exit {exc.code})")
    assert isinstance(args, argparse.Namespace)


def quick_start_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    start = text.index("## Quick start")
    blocks = [m.group(2) for m in FENCE.finditer(text, start) if m.group(1) == "sh"]
    readme = Snippet(REPO / "README.md", 0, "sh", "\n".join(blocks))
    return command_lines(readme)


@pytest.mark.slow
def test_quick_start_runs_as_written(tmp_path: Path) -> None:
    """The main job, then `runs`, `export` and `plot` on the run it made."""
    commands = [c for c in quick_start_commands() if c[0] == "mdfd" and c[1] != "serve"]
    assert [c[1] for c in commands][:4] == ["run", "runs", "export", "plot"]
    env = sim_env(tmp_path / "var", MDFD_TIME_SCALE="3000")

    def attempt() -> subprocess.CompletedProcess[str]:
        env.update(sim_env(tmp_path / "var", MDFD_TIME_SCALE="3000"))  # fresh ports
        return mdfd(*commands[0][1:], "--json", env=env, timeout=300)

    run = retry_port_race(attempt)
    assert run.returncode == 0, run.stderr[-2000:]
    run_id = json.loads(run.stdout.strip().splitlines()[-1])["run_id"]
    outputs = {
        "RUN_ID": run_id,
        "out.csv": str(tmp_path / "out.csv"),
        "out.png": str(tmp_path / "out.png"),
    }
    for words in commands[1:]:
        done = mdfd(*[outputs.get(w, w) for w in words[1:]], env=env)
        assert done.returncode == 0, f"{' '.join(words)}: {done.stderr[-2000:]}"
    rows = [r for r in (tmp_path / "out.csv").read_text().splitlines() if not r.startswith("#")]
    assert len(rows) == 11  # header + 10 points
    assert (tmp_path / "out.png").read_bytes()[:4] == b"\x89PNG"


def test_snippets_were_found() -> None:
    assert len(YAML_SNIPPETS) >= 5
    assert len(COMMANDS) >= 10
