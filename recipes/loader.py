"""Load a recipe file into a validated `Recipe`, or say exactly where it is wrong."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from .located import InputError, LocatedDocument, load_located
from .model import Recipe


@dataclass(frozen=True)
class LoadedRecipe:
    path: str
    text: str
    sha256: str
    model: Recipe
    document: LocatedDocument


def load_recipe(path: Path | str, text: str | None = None) -> LoadedRecipe:
    """Parse and validate; `text` lets the daemon validate a submitted recipe it never opens."""
    doc = load_located(path, text)
    if not isinstance(doc.data, dict):
        raise InputError([doc.problem((), "a recipe must be a mapping")])
    try:
        model = Recipe.model_validate(doc.data)
    except ValidationError as exc:
        raise InputError(doc.problems_from(exc)) from exc
    problems = [doc.problem(where, message) for where, message in model.reference_problems()]
    if problems:
        raise InputError(problems)
    digest = hashlib.sha256(doc.text.encode("utf-8")).hexdigest()
    return LoadedRecipe(str(path), doc.text, digest, model, doc)
