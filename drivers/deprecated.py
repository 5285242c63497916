"""Deprecated config keys that still load: old configs keep working, and say what to write.

For a driver config's `model_validator(mode="before")`, so the translation happens before the
strict model (unknown keys are errors) sees the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog


def rename_deprecated(
    data: Any,
    renames: Mapping[str, str],
    *,
    driver: str,
    ignored: Mapping[str, str] | None = None,
) -> Any:
    """Move each deprecated key (a dotted path) to its replacement, with a warning naming the
    new key; drop each key of `ignored` with a warning giving its reason. An old key given
    together with its replacement is an error: one of the two would silently lose."""
    if not isinstance(data, dict):
        return data
    log = structlog.get_logger()
    out = _copy(data)
    for old, new in renames.items():
        found, value = _pop(out, old)
        if not found:
            continue
        parent, leaf = _parent(out, new, create=True)
        if parent is None or leaf in parent:
            raise ValueError(f"`{old}` is the deprecated spelling of `{new}`: give only `{new}`")
        parent[leaf] = value
        log.warning("deprecated config key", driver=driver, key=old, use=new)
    for old, reason in (ignored or {}).items():
        found, _ = _pop(out, old)
        if found:
            log.warning("deprecated config key ignored", driver=driver, key=old, reason=reason)
    return out


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def _parent(
    data: dict[str, Any], path: str, *, create: bool = False
) -> tuple[dict[str, Any] | None, str]:
    """The mapping holding `path`'s last key (None if the path crosses a non-mapping)."""
    *parents, leaf = path.split(".")
    for key in parents:
        if create and key not in data:
            data[key] = {}
        child = data.get(key)
        if not isinstance(child, dict):
            return None, leaf
        data = child
    return data, leaf


def _pop(data: dict[str, Any], path: str) -> tuple[bool, Any]:
    parent, leaf = _parent(data, path)
    if parent is None or leaf not in parent:
        return False, None
    return True, parent.pop(leaf)
