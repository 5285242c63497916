"""The driver conformance kit: a pytest suite any driver package runs against its own peer.

    from mdfd.drivers.testing import ConformanceTarget, DriverConformance, WireProxy

    class TestMyDriver(DriverConformance):
        @pytest.fixture
        async def target(self, my_simulator):
            async with WireProxy("127.0.0.1", my_simulator.port) as proxy:
                yield ConformanceTarget(make_driver=..., proxy=proxy, ...)

Needs pytest and pytest-asyncio (the `test` extra). See docs/drivers/writing-a-driver.md.
"""

from .proxy import Mode, WireProxy
from .suite import ConformanceTarget, DriverConformance, connected

__all__ = ["ConformanceTarget", "DriverConformance", "Mode", "WireProxy", "connected"]
