"""`mdfd schema recipe|config|record|events|api`: JSON Schema for editors (YAML language
servers read it), for the data platform (what an upstream record looks like) and for clients
of the daemon (its event stream and its control API's answers)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from types import GenericAlias
from typing import Any, Union

from pydantic import BaseModel, create_model

from mdfd.daemons.core.config import MdfConfig
from mdfd.daemons.core.envvars import ENV_PATTERN
from mdfd.daemons.engine import events
from mdfd.daemons.serve import views
from mdfd.daemons.upstream.record import Record
from mdfd.drivers import available as available_drivers
from mdfd.drivers import driver_class
from mdfd.recipes.model import Recipe
from mdfd.simulators.base import available as available_simulators
from mdfd.simulators.base import simulator_class

from . import add_command

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub,
        "schema",
        "print the JSON Schema of a file kind (for editors and validators)",
        "mdfd schema recipe > recipe.schema.json",
    )
    parser.add_argument(
        "kind", choices=["config", "recipe", "record", "events", "api"], help="which file kind"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    print(json.dumps(schema_for(args.kind), indent=2))
    return 0


def schema_for(kind: str) -> dict[str, Any]:
    """The published JSON Schema of one file kind: what `mdfd schema KIND` prints and what the
    documentation's reference pages are generated from."""
    if kind == "recipe":
        schema = Recipe.model_json_schema()
    elif kind == "record":
        schema = Record.model_json_schema(by_alias=True)
    elif kind == "events":
        schema = events.json_schema()
    elif kind == "api":
        schema = views.json_schema()
    else:
        schema = allow_env_references(config_model().model_json_schema())
    return {"$schema": DIALECT, **schema}


def config_model() -> type[BaseModel]:
    """MdfConfig with each instrument and simulator typed by the installed drivers' and kinds'
    own models: the base models forbid the driver-specific fields a real config is made of."""
    drivers = _loadable(available_drivers(), driver_class)
    kinds = _loadable(available_simulators(), simulator_class)
    instrument = _union([cls.config_model for cls in drivers])
    simulator = _union([cls.settings_model for cls in kinds])
    # GenericAlias spells at run time what `dict[str, instrument]` would: the value type is
    # only known once the entry points are loaded, so it is no static type expression.
    fields: dict[str, Any] = {
        "instruments": (GenericAlias(dict, (str, instrument)), ...),
        "simulators": (GenericAlias(dict, (str, simulator)), {}),
    }
    return create_model("MdfConfig", __base__=MdfConfig, __doc__=MdfConfig.__doc__, **fields)


def _loadable(names: list[str], load: Callable[[str], Any]) -> list[Any]:
    """The classes whose entry points load; a broken third-party plugin must not hide the rest."""
    out = []
    for name in names:
        try:
            out.append(load(name))
        except (ImportError, AttributeError):
            continue
    return out


def _union(models: list[type[BaseModel]]) -> Any:
    return Union[tuple(models)] if len(models) > 1 else models[0]  # noqa: UP007


def allow_env_references(schema: Any) -> Any:
    """A config may write any scalar as `${NAME:-default}` (expanded before validation), so
    an editor must accept that string wherever a number or boolean is expected."""
    if isinstance(schema, list):
        return [allow_env_references(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: allow_env_references(value) for key, value in schema.items()}
    if out.get("type") in ("integer", "number", "boolean"):
        return {"anyOf": [out, {"type": "string", "pattern": ENV_PATTERN.pattern}]}
    return out
