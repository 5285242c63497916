"""The driver conformance kit against the meter simulator: a SCPI socket resource through the
kit's wire proxy (so the wire-fault checks run) and an ASRL resource over a real pty."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from visa_support import BUFFER, driver_config, instrument
from visa_support import CHANNELS as METER_CHANNELS

from mdfd.drivers.testing import ConformanceTarget, DriverConformance, WireProxy
from mdfd.drivers.visa import VisaDriver, VisaInstrument
from mdfd.simulators.meter import MeterSimulator

CHANNELS = ["capacitance", "loss", "resistivity", "specimen"]


def target_for(config: VisaInstrument, proxy: WireProxy | None) -> ConformanceTarget:
    return ConformanceTarget(
        make_driver=lambda context: VisaDriver("meter", config, context),
        channels=CHANNELS,
        units={name: METER_CHANNELS[name].get("unit", "") for name in CHANNELS},
        writable="specimen",
        in_limits=5,
        out_of_limits=-1,
        failure_bound=8.0,
        proxy=proxy,
        buffer_channels=["resistivity"] if config.buffer is not None else [],
        buffer_rate=50.0,
    )


class TestVisaSocket(DriverConformance):
    @pytest.fixture
    async def target(self, meter: MeterSimulator) -> AsyncIterator[ConformanceTarget]:
        port = int(meter.endpoints()["tcp"].rsplit(":", 1)[1])
        async with WireProxy("127.0.0.1", port) as proxy:
            resource = f"TCPIP::127.0.0.1::{proxy.port}::SOCKET"
            yield target_for(instrument(resource, buffer=BUFFER), proxy)


class TestVisaSerial(DriverConformance):
    @pytest.fixture
    async def target(self, meter: MeterSimulator) -> ConformanceTarget:
        return target_for(driver_config(meter, "serial", buffer=BUFFER), None)
