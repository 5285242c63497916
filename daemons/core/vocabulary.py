"""The standard data items (`config/vocabulary.yaml`): code, category, name, unit, type, range.

A record item outside this list, in the wrong category or with an incompatible unit would be
rejected upstream after the measurement is done; checking it here, at `mdfd validate`, moves
that failure to before the run.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mdfd.recipes.located import InputError, LocatedDocument, Problem, load_located
from mdfd.recipes.model import Category
from mdfd.recipes.units import UnitText


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Item(Strict):
    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    category: Category
    name: str
    unit: UnitText = ""
    type: Literal["float", "int", "string", "bool"] = "float"
    range: tuple[float, float] | None = None
    domains: list[Literal["chemistry", "metal", "ceramic", "textile"]] = []
    description: str = ""


class Header(Strict):
    name: str
    version: str


class Vocabulary(Strict):
    vocabulary: Header
    items: list[Item] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Vocabulary:
        seen: set[str] = set()
        for item in self.items:
            if item.code in seen:
                raise ValueError(f"duplicate item code {item.code}")
            seen.add(item.code)
        return self

    def by_code(self) -> dict[str, Item]:
        return {item.code: item for item in self.items}


@cache
def load_vocabulary(path: Path) -> Vocabulary:
    doc = load_located(path)
    duplicates = _duplicate_codes(doc)
    if duplicates:
        raise InputError(duplicates)
    try:
        return Vocabulary.model_validate(doc.data)
    except ValidationError as exc:
        raise InputError(doc.problems_from(exc)) from exc


def _duplicate_codes(doc: LocatedDocument) -> list[Problem]:
    """Each repeated code, at its own line (the model's check could only name the file)."""
    items = doc.data.get("items") if isinstance(doc.data, dict) else None
    if not isinstance(items, list):
        return []
    first: dict[str, int] = {}
    problems = []
    for index, item in enumerate(items):
        code = item.get("code") if isinstance(item, dict) else None
        if not isinstance(code, str):
            continue
        if code in first:
            where = ("items", index, "code")
            problems.append(
                doc.problem(where, f"duplicate item code {code} (first: items[{first[code]}])")
            )
        first.setdefault(code, index)
    return problems
