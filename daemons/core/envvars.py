"""`${NAME}` and `${NAME:-default}` in config values: secrets and per-host values come from the
environment, never the file. One definition for the daemon's config loader and for `mdfctl`,
which reads only the config's `storage` section and must find the same socket."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, missing: Callable[[str], None] | None = None) -> str:
    """Expand every reference in `text`. As in the shell, `:-` takes the default when NAME is
    unset *or empty* (an empty `MDFD_VAR=` in an environment file must not turn
    `${MDFD_VAR:-var}/state` into `/state`). An unset NAME without a default is reported to
    `missing` and expands to nothing."""

    def expand(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if default is not None:
            return found or default
        if found is None and missing is not None:
            missing(name)
        return found or ""

    return ENV_PATTERN.sub(expand, text)


def variables_in(text: str) -> list[str]:
    """The environment variables `text` refers to."""
    return [name for name, _ in ENV_PATTERN.findall(text)]
