"""Find drivers by name through the `mdfd.drivers` entry-point group.

Third parties ship a driver as a package that declares an entry point; no edit here is needed,
and the built-in drivers register the same way so there is a single path to load any of them.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from .base import DriverFactory

GROUP = "mdfd.drivers"


class UnknownDriver(LookupError):
    pass


def available() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


@cache
def driver_class(name: str) -> DriverFactory:
    """The driver registered as `name`: call it as `(name, config, context)` with a `config`
    validated by its `config_model`."""
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not matches:
        raise UnknownDriver(f"unknown driver {name!r}; installed: {', '.join(available())}")
    factory: DriverFactory = matches[0].load()
    return factory
