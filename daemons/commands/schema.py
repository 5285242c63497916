"""`mdfd schema recipe|config`: JSON Schema for editors (YAML language servers read it)."""

from __future__ import annotations

import argparse
import json

from mdfd.recipes.model import Recipe

from ..config import MdfConfig

SCHEMAS = {"recipe": Recipe, "config": MdfConfig}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("schema", help="print the JSON Schema of a file kind")
    parser.add_argument("kind", choices=sorted(SCHEMAS))
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    print(json.dumps(SCHEMAS[args.kind].model_json_schema(), indent=2))
    return 0
