"""The driver conformance kit against the reactor simulator, through the kit's wire proxy:
a plain session and a Basic256Sha256 SignAndEncrypt session with a trusted client certificate
and a username, each against a simulator process of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from opcua_support import CHANNELS as REACTOR_CHANNELS
from opcua_support import client_certificate, instrument, start_simulator, write_config

from mdfd.drivers import DriverContext
from mdfd.drivers.opcua import OpcUaDriver, OpcUaInstrument
from mdfd.drivers.testing import ConformanceTarget, DriverConformance, WireProxy
from tests.support import stop_process

CHANNELS = ["temperature", "pressure", "ph", "temperature_sp"]
PASSWORD_ENV = "MDFD_CONFORMANCE_REACTOR_PASSWORD"


def through(url: str, proxy: WireProxy) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}"))


def target_for(config: OpcUaInstrument, proxy: WireProxy) -> ConformanceTarget:
    return ConformanceTarget(
        make_driver=lambda context: OpcUaDriver("reactor", config, context),
        channels=CHANNELS,
        units={name: REACTOR_CHANNELS[name].get("unit", "") for name in CHANNELS},
        writable="temperature_sp",
        in_limits=80.0,
        out_of_limits=900.0,
        failure_bound=12.0,
        proxy=proxy,
        bad_channel="conversion",
        text_channel="fault_bad",
    )


async def break_conversion(config: OpcUaInstrument) -> None:
    """The analyser's conversion reads Bad (BadSensorFailure): the block checks' bad channel.
    Nothing else of the kit reads it, so it stays broken for the module's simulator."""
    driver = OpcUaDriver("reactor", config, DriverContext())
    await driver.connect()
    try:
        await driver.write("fault_bad", "Analyser.Conversion")
    finally:
        await driver.close()


@pytest.fixture(scope="module")
def plain_reactor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A reactor of the kit's own (it writes setpoints), built once: an address space takes
    seconds to build."""
    process, url = start_simulator(write_config(tmp_path_factory.mktemp("conformance-plain")))
    try:
        yield url
    finally:
        stop_process(process)


class TestOpcUaPlain(DriverConformance):
    @pytest.fixture
    async def target(self, plain_reactor: str) -> AsyncIterator[ConformanceTarget]:
        url = plain_reactor
        async with WireProxy("127.0.0.1", urlsplit(url).port or 4840) as proxy:
            config = instrument(through(url, proxy))
            await break_conversion(config)
            yield target_for(config, proxy)


@pytest.fixture(scope="module")
def secure_reactor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    pki = tmp_path_factory.mktemp("conformance-secure")
    certificate, _key = client_certificate(pki / "clients", "engineer")
    (pki / "trusted").mkdir()
    (pki / "trusted" / certificate.name).write_bytes(certificate.read_bytes())
    extra = (
        "    security: [Basic256Sha256]\n"
        f"    certificate_dir: {pki / 'server'}\n"
        f"    trusted_clients: {pki / 'trusted'}\n"
        "    users: {operator: s3cret}\n"
    )
    process, url = start_simulator(write_config(pki / "sim", extra=extra))
    try:
        yield url, pki
    finally:
        stop_process(process)


class TestOpcUaSecure(DriverConformance):
    @pytest.fixture
    async def target(
        self, secure_reactor: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
    ) -> AsyncIterator[ConformanceTarget]:
        url, pki = secure_reactor
        monkeypatch.setenv(PASSWORD_ENV, "s3cret")
        security = {
            "policy": "Basic256Sha256",
            "mode": "SignAndEncrypt",
            "certificate": str(pki / "clients" / "engineer.der"),
            "private_key": str(pki / "clients" / "engineer.pem"),
        }
        async with WireProxy("127.0.0.1", urlsplit(url).port or 4840) as proxy:
            config = instrument(
                through(url, proxy),
                security=security,
                username="operator",
                password_env=PASSWORD_ENV,
            )
            await break_conversion(config)
            yield target_for(config, proxy)
