"""MkDocs hook: the reference pages are generated from the models at build time.

The configuration, recipe, record, event-stream and control-API references are rendered from the
same JSON Schemas that `mdfd schema config|recipe|record|events|api` prints, so the tables cannot
drift from the code: a field added to a model appears here on the next build, with its type,
default and description.
"""

from __future__ import annotations

import json
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

PAGES = {
    "reference/config.md": (
        "config",
        "Configuration file reference",
        "The MDF configuration file, as `mdfd schema config` describes it with the installed "
        "drivers and simulator kinds. See the [configuration guide](../guides/configuration.md).",
    ),
    "reference/recipe.md": (
        "recipe",
        "Recipe reference",
        "A recipe file, as `mdfd schema recipe` describes it. "
        "See the [recipes guide](../guides/recipes.md).",
    ),
    "reference/record.md": (
        "record",
        "Upstream record reference",
        "One standardized record per measured point, as `mdfd schema record` describes it. "
        "See [upstream records](../guides/upstream.md).",
    ),
    "reference/events.md": (
        "events",
        "Event stream reference",
        "One line of the daemon's `GET /events` NDJSON stream (and of `mdfctl watch --json`) per "
        "event, as `mdfd schema events` describes it: the `event` field names the kind. "
        "See [daemon and mdfctl](../guides/daemon.md).",
    ),
    "reference/api.md": (
        "api",
        "Control API reference",
        "What each endpoint of the control API answers, as `mdfd schema api` describes it. "
        "See [daemon and mdfctl](../guides/daemon.md).",
    ),
}


def schema_of(kind: str) -> dict[str, Any]:
    from mdfd.daemons.cli.commands.schema import schema_for

    return schema_for(kind)


def type_text(prop: dict[str, Any]) -> str:
    """A short human type: `Storage`, `list[Interlock]`, `number | null`, `"tcp" | "rtu"`."""
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "const" in prop:
        return json.dumps(prop["const"])
    if "enum" in prop:
        return " \\| ".join(json.dumps(v) for v in prop["enum"])
    for key in ("anyOf", "oneOf"):
        if key in prop:
            return " \\| ".join(type_text(p) for p in prop[key])
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list[{type_text(prop.get('items', {}))}]"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"map[str, {type_text(prop['additionalProperties'])}]"
    return str(kind)


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table(model: dict[str, Any]) -> list[str]:
    props = model.get("properties", {})
    if not props:
        return []
    required = set(model.get("required", []))
    lines = ["| Field | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for name, prop in props.items():
        default = "required" if name in required else f"`{json.dumps(prop.get('default'))}`"
        if name not in required and "default" not in prop:
            default = ""
        lines.append(
            f"| `{name}` | {type_text(prop)} | {cell(default)} | "
            f"{cell(prop.get('description', ''))} |"
        )
    return lines


def section(name: str, model: dict[str, Any]) -> list[str]:
    lines = [f"## {name}", ""]
    if model.get("description"):
        lines += [model["description"].strip(), ""]
    if "enum" in model:
        lines += ["One of: " + ", ".join(f"`{v}`" for v in model["enum"]), ""]
    lines += table(model)
    return [*lines, ""]


def endpoints(routes: dict[str, Any]) -> list[str]:
    """Which endpoint answers with which shape (the control API's schema names them)."""
    if not routes:
        return []
    lines = ["| Endpoint | Answer |", "| --- | --- |"]
    lines += [f"| `{route}` | {type_text(shape)} |" for route, shape in routes.items()]
    return [*lines, ""]


def render(kind: str, title: str, intro: str) -> str:
    schema = schema_of(kind)
    lines = [f"# {title}", "", intro, "", "*Generated from the models when the site is built.*", ""]
    top = {k: v for k, v in schema.items() if k != "$defs"}
    lines += section(schema.get("title", kind), top)
    lines += endpoints(schema.get("x-endpoints", {}))
    for name, model in sorted(schema.get("$defs", {}).items()):
        lines += section(name, model)
    return "\n".join(lines)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for uri, (kind, title, intro) in PAGES.items():
        files.append(File.generated(config, uri, content=render(kind, title, intro)))
    files.append(File.generated(config, "decisions/index.md", content=decisions_index(files)))
    return files


def decisions_index(files: Files) -> str:
    """The list of decision records, built from the records themselves (title = first line)."""
    lines = [
        "# Decision records",
        "",
        "One short record per decision that shaped the code: its context, the decision, and its",
        "consequences, numbered in the order they were written down (a gap is a number that was",
        "reserved and not used).",
        "",
    ]
    records = sorted(
        (f for f in files.documentation_pages() if f.src_uri.startswith("decisions/0")),
        key=lambda f: f.src_uri,
    )
    for f in records:
        title = f.content_string.splitlines()[0].lstrip("# ").strip()
        lines.append(f"- [{title}]({f.src_uri.removeprefix('decisions/')})")
    return "\n".join(lines) + "\n"
