"""The simulator contract and its registry.

A simulator is an independent peer on the wire: it never imports drivers or the daemon, so a
driver test against it proves the protocol rather than a shared assumption. Simulators are
found through the `mdfd.simulators` entry-point group, just like drivers; a kind may declare its
settings model under `mdfd.simulator_settings`, in a module that imports no protocol library,
so a config is validated without importing the simulator itself (ADR 0075).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from .world import World

GROUP = "mdfd.simulators"
SETTINGS_GROUP = "mdfd.simulator_settings"


class SimulatorSettings(BaseModel):
    """Fields every simulator has; each kind extends it. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    host: str = "127.0.0.1"


@runtime_checkable
class Simulator(Protocol):
    """Constructed as `cls(name, settings, world)`; `start` binds its sockets / ptys and returns
    once clients can connect; `endpoints` then says where (e.g. {"tcp": "127.0.0.1:5020",
    "rtu": "/dev/pts/7"})."""

    settings_model: ClassVar[type[SimulatorSettings]]
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def endpoints(self) -> dict[str, str]: ...


class SimulatorClass(Protocol):
    """What the registry hands out: a kind's class, called with settings its own
    `settings_model` validated (a Protocol's constructor is no part of the Protocol, so the
    call is spelled here)."""

    @property
    def settings_model(self) -> type[SimulatorSettings]: ...

    def __call__(self, name: str, settings: SimulatorSettings, world: World) -> Simulator: ...


class UnknownSimulator(LookupError):
    pass


def available() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


@cache
def simulator_class(kind: str) -> SimulatorClass:
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == kind]
    if not matches:
        raise UnknownSimulator(f"unknown simulator kind {kind!r}; installed: {available()}")
    return matches[0].load()


@cache
def settings_model(kind: str) -> type[SimulatorSettings]:
    """The model a simulator of `kind` is validated by: from its `mdfd.simulator_settings` entry
    point when it declares one (no protocol library imported), else from its class."""
    light = [ep for ep in entry_points(group=SETTINGS_GROUP) if ep.name == kind]
    if light:
        model: type[SimulatorSettings] = light[0].load()
        return model
    return simulator_class(kind).settings_model
