"""The driver conformance kit against the memory driver (no wire: the wire-fault checks skip)."""

from __future__ import annotations

import pytest

from mdfd.drivers.memory import MemoryDriver, MemoryInstrument
from mdfd.drivers.testing import ConformanceTarget, DriverConformance

CONFIG = MemoryInstrument.model_validate(
    {
        "driver": "memory",
        "buffer": True,
        "channels": {
            "temperature": {"unit": "degC", "follows": "setpoint", "tau": 5, "initial": 25},
            "setpoint": {"unit": "degC", "writable": True, "limits": {"min": 0, "max": 1400}},
            "running": {"writable": True, "initial": True},
            "broken": {"initial": float("nan")},
            "label": {"initial": "batch 7"},
        },
    }
)


class TestMemory(DriverConformance):
    @pytest.fixture
    def target(self) -> ConformanceTarget:
        return ConformanceTarget(
            make_driver=lambda context: MemoryDriver("furnace", CONFIG, context),
            channels=["temperature", "setpoint", "running"],
            units={"temperature": "degC", "setpoint": "degC", "running": ""},
            writable="setpoint",
            in_limits=300.0,
            out_of_limits=1500.0,
            steady_channels=["setpoint", "running"],
            bad_channel="broken",
            text_channel="label",
            buffer_channels=["temperature", "setpoint"],
            buffer_rate=1000.0,
        )
