"""The simulator contract and its registry.

A simulator is an independent peer on the wire: it never imports drivers or the daemon, so a
driver test against it proves the protocol rather than a shared assumption. Simulators are
found through the `mdfd.simulators` entry-point group, just like drivers.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

GROUP = "mdfd.simulators"


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


class UnknownSimulator(LookupError):
    pass


def available() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


@cache
def simulator_class(kind: str) -> type[Simulator]:
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == kind]
    if not matches:
        raise UnknownSimulator(f"unknown simulator kind {kind!r}; installed: {available()}")
    return matches[0].load()
