"""Find drivers by name through the `mdfd.drivers` entry-point group.

Third parties ship a driver as a package that declares an entry point; no edit here is needed,
and the built-in drivers register the same way so there is a single path to load any of them.
A driver may also declare its config model under `mdfd.driver_configs`, in a module that imports
no protocol library: config validation then never imports the driver itself (ADR 0075).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from .base import DriverFactory, InstrumentConfig

GROUP = "mdfd.drivers"
CONFIG_GROUP = "mdfd.driver_configs"


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


@cache
def config_model(name: str) -> type[InstrumentConfig[Any]]:
    """The model an instrument of driver `name` is validated by. Taken from the driver's
    `mdfd.driver_configs` entry point when it declares one, so validating a config (before
    `READY=1`, in `mdfd validate`) costs no protocol library; else from the driver class."""
    light = [ep for ep in entry_points(group=CONFIG_GROUP) if ep.name == name]
    if light:
        model: type[InstrumentConfig[Any]] = light[0].load()
        return model
    return driver_class(name).config_model
