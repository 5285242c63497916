"""The reactor simulator's settings, apart from its implementation: a config naming a reactor is
validated without importing asyncua (the `mdfd.simulator_settings` entry point, ADR 0075)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .base import SimulatorSettings

TAG_KEYS = frozenset(
    {
        "Analyser.Conversion",
        "Analyser.SampleCount",
        "Analyser.SampleInterval",
        "Analyser.Selectivity",
        "Bath.pH",
        "Bath.pHSetpoint",
        "Faults.Bad",
        "Faults.Invalid",
        "Faults.ResponseDelay",
        "Faults.Restart",
        "Faults.Stuck",
        "Feed.Flow",
        "Feed.FlowSetpoint",
        "Feed.PumpRunning",
        "Feed.ValvePosition",
        "Reactor.AgitatorSpeed",
        "Reactor.Pressure",
        "Reactor.PressureSetpoint",
        "Reactor.Temperature",
        "Reactor.TemperatureSetpoint",
    }
)
"""The address space's variables ("Folder.Name"), which faults may name: `opcua_space.TAGS`
carries their asyncua types, and a test holds the two equal."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeConstants(_Strict):
    """First-order time constants of the skid, in simulated seconds."""

    temperature: float = Field(default=90.0, gt=0)
    pressure: float = Field(default=20.0, gt=0)
    feed_flow: float = Field(default=10.0, gt=0)
    ph: float = Field(default=30.0, gt=0)


class FaultSettings(_Strict):
    """Faults active from the start; the `Faults` folder changes them at run time."""

    response_delay_ms: float = Field(default=0.0, ge=0, le=60_000)
    stuck: list[str] = []
    bad: list[str] = []
    invalid: list[str] = []

    @field_validator("stuck", "bad", "invalid")
    @classmethod
    def _known(cls, keys: list[str]) -> list[str]:
        unknown = [key for key in keys if key not in TAG_KEYS]
        if unknown:
            raise ValueError(f"unknown variables {unknown}; known: {sorted(TAG_KEYS)}")
        return keys


class ReactorSettings(SimulatorSettings):
    kind: Literal["reactor"] = "reactor"
    port: int = Field(default=4840, ge=0, le=65535, description="0 picks a free port")
    path: str = "mdfd/reactor"
    namespace: str = "urn:mdfd:sim:reactor"
    update_interval: float = Field(default=0.1, gt=0, le=10, description="wall seconds per scan")
    security: list[Literal["None", "Basic256Sha256"]] = Field(default=["None"], min_length=1)
    certificate_dir: Path | None = None
    trusted_clients: Path | None = Field(
        default=None, description="directory of trusted client certificates; unset trusts all"
    )
    users: dict[str, str] = Field(default_factory=dict, description="name -> password")
    time_constants: TimeConstants | None = None
    restart_downtime: float = Field(default=1.0, ge=0, le=600, description="wall seconds")
    min_sampling_interval: float = Field(
        default=0.0, ge=0, le=60_000, description="ms; slower requests are revised up to it"
    )
    faults: FaultSettings = FaultSettings()

    @model_validator(mode="after")
    def _certificates_for_security(self) -> ReactorSettings:
        if "Basic256Sha256" in self.security and self.certificate_dir is None:
            raise ValueError("security Basic256Sha256 needs certificate_dir")
        return self
