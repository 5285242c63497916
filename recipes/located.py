"""YAML with line numbers, and errors that say where.

Operators fix what they can find: every problem in a recipe or a config is reported as
`file:line: field: message`. PyYAML's composer keeps the marks; we walk the node tree once and
remember the line of every mapping key and sequence item by its path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .yamlbounds import LIMITS, Loader, Refused, YamlLimits, check_bounds, read_bounded

PathKey = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    source: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.field or '(document)'}: {self.message}"


class InputError(Exception):
    """Bad input: every problem found, each located. The CLIs map this to exit code 2."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class LocatedDocument:
    source: str
    text: str
    data: Any
    lines: dict[PathKey, int]

    def line_of(self, path: PathKey) -> int | None:
        """The line of the deepest known prefix of `path` (1-based)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def problem(self, path: PathKey, message: str) -> Problem:
        return Problem(self.source, self.line_of(path), format_path(path), message)

    def problems_from(self, error: ValidationError, prefix: PathKey = ()) -> list[Problem]:
        problems = []
        for item in error.errors():
            path: PathKey = prefix
            for part in item["loc"]:
                if _is_union_tag(part) or self._is_repeated_tag(path, part):
                    continue
                path = (*path, part)
            problems.append(self.problem(path, _clean_message(item)))
        return problems

    def _is_repeated_tag(self, path: PathKey, part: str | int) -> bool:
        """A tagged union named after its one key (`- ramp: {...}`) repeats that key in `loc`
        (steps.0.ramp.ramp.rate); drop the repeat unless the document really nests it."""
        return bool(path) and part == path[-1] and (*path, part) not in self.lines


def format_path(path: PathKey) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _is_union_tag(part: str | int) -> bool:
    return isinstance(part, str) and (part.startswith(("function-", "tagged-union")) or "[" in part)


def _clean_message(item: Any) -> str:
    message = str(item["msg"])
    if item["type"] == "extra_forbidden":
        return "unknown key (not allowed here)"
    return message.removeprefix("Value error, ")


def load_located(
    path: Path | str, text: str | None = None, limits: YamlLimits = LIMITS
) -> LocatedDocument:
    """Parse YAML from `path` (or from `text`, naming it `path`), keeping line numbers.

    Bounded first (size, depth, aliases, expanded nodes, scalar text: see `yamlbounds`), so
    whatever the text, this returns or refuses in well under a second.
    """
    source = str(path)
    try:
        if text is None:
            text = read_bounded(path, limits)
        check_bounds(text, limits)
    except Refused as exc:
        raise InputError([Problem(source, exc.line, format_path(exc.path), exc.message)]) from None
    try:
        node = yaml.compose(text, Loader=Loader)
        data = Loader("").construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise InputError([Problem(source, line, "", f"YAML syntax error: {reason}")]) from exc
    lines: dict[PathKey, int] = {}
    duplicates: list[Problem] = []
    if node is not None:
        _walk(node, (), lines, duplicates, source)
    if duplicates:
        raise InputError(duplicates)
    return LocatedDocument(source, text, data, lines)


def _walk(
    node: yaml.Node,
    path: PathKey,
    lines: dict[PathKey, int],
    duplicates: list[Problem],
    source: str,
) -> None:
    """Record every key's line; YAML's last-one-wins on duplicate keys would hide a typo."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                duplicates.append(Problem(source, line, format_path((*path, key)), "duplicate key"))
            seen.add(key)
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, duplicates, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines, duplicates, source)
