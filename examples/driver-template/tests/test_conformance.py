"""The thermostat driver passes mdfd's driver conformance kit, through the kit's wire proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from mdfd_thermostat.driver import ThermostatDriver, ThermostatInstrument
from mdfd_thermostat.simulator import ThermostatSimulator

from mdfd.drivers import driver_class
from mdfd.drivers.testing import ConformanceTarget, DriverConformance, WireProxy


@pytest.fixture
async def bath() -> AsyncIterator[ThermostatSimulator]:
    simulator = ThermostatSimulator()
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


class TestThermostat(DriverConformance):
    @pytest.fixture
    async def target(self, bath: ThermostatSimulator) -> AsyncIterator[ConformanceTarget]:
        async with WireProxy("127.0.0.1", bath.port) as proxy:
            config = ThermostatInstrument.model_validate(
                {
                    "driver": "thermostat",
                    "port": proxy.port,
                    "timeout": 0.5,
                    "channels": {
                        "temperature": {"unit": "degC"},
                        "setpoint": {
                            "unit": "degC",
                            "writable": True,
                            "limits": {"min": 5, "max": 95},
                        },
                    },
                }
            )
            yield ConformanceTarget(
                make_driver=lambda context: ThermostatDriver("bath", config, context),
                channels=["temperature", "setpoint"],
                units={"temperature": "degC", "setpoint": "degC"},
                writable="setpoint",
                in_limits=40.0,
                out_of_limits=120.0,
                failure_bound=3.0,
                proxy=proxy,
            )


def test_installed_as_an_mdfd_driver() -> None:
    """The entry point makes `driver: thermostat` resolve in an MDF config."""
    assert driver_class("thermostat") is ThermostatDriver
