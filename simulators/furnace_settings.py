"""The furnace simulator's settings, apart from its implementation: a config naming a furnace is
validated without importing pymodbus (the `mdfd.simulator_settings` entry point, ADR 0075)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import SimulatorSettings


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RtuSettings(Strict):
    link: Path | None = Field(
        default=None, description="stable symlink to the pty a client opens (replaced on start)"
    )
    unit: int = Field(default=1, ge=1, le=247)
    baudrate: int = Field(default=19200, gt=0)


class FaultSettings(Strict):
    """Faults active from the start; the same switches as registers 900-904."""

    latency_ms: int = Field(default=0, ge=0, le=60000)
    drop: int = Field(default=0, ge=0, le=65535)
    exception_code: int = Field(default=0, ge=0, le=255)
    corrupt: int = Field(default=0, ge=0, le=65535)
    stuck: bool = False


class FurnaceSettings(SimulatorSettings):
    kind: Literal["furnace"]
    port: int | None = Field(default=0, ge=0, le=65535, description="TCP port; 0 = any; null = off")
    unit: int = Field(default=1, ge=1, le=247, description="unit id served on TCP")
    rtu: RtuSettings | None = None
    tau: float | None = Field(default=None, gt=0, description="thermal time constant, sim s")
    gain: float | None = Field(default=None, gt=0, description="degC above ambient per % output")
    ramp_rate: float | None = Field(default=None, ge=0, description="initial degC/min")
    kp: float | None = Field(default=None, ge=0)
    ki: float | None = Field(default=None, ge=0)
    ambient: float | None = None
    noise: float = Field(default=0.05, ge=0, description="PV noise sigma, degC")
    high_alarm: float = 1450.0
    low_alarm: float = 0.0
    deviation_band: float = Field(default=5.0, ge=0)
    vendor: str = "mdfd-sim"
    model: str = "FC-1400 furnace controller"
    revision: str = "1.0"
    faults: FaultSettings = FaultSettings()
