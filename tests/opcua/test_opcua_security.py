"""Basic256Sha256 Sign / SignAndEncrypt with client certificates and username login against a
simulator that trusts one client certificate and knows one user; the refusals say why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opcua_support import (
    ChannelRefusingPeer,
    client_certificate,
    instrument,
    start_simulator,
    write_config,
)

from mdfd.drivers import DriverContext, ProtocolError
from mdfd.drivers.opcua import OpcUaDriver
from mdfd.simulators.opcua_security import CERTIFICATE_FILE, KEY_FILE, ensure_certificate
from tests.daemon.harness import Daemon, wait_until
from tests.support import mdfd, stop_process

PASSWORD_ENV = "MDFD_TEST_REACTOR_PASSWORD"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("opcua-secure")
    certificate, _key = client_certificate(root / "clients", "engineer")
    client_certificate(root / "clients", "stranger")
    (root / "trusted").mkdir()
    (root / "trusted" / certificate.name).write_bytes(certificate.read_bytes())
    return root


@pytest.fixture(scope="module")
def secure_url(pki: Path) -> Iterator[str]:
    extra = (
        "    security: [Basic256Sha256]\n"
        f"    certificate_dir: {pki / 'server'}\n"
        f"    trusted_clients: {pki / 'trusted'}\n"
        "    users: {operator: s3cret}\n"
    )
    process, url = start_simulator(write_config(pki / "sim", extra=extra))
    try:
        yield url
    finally:
        stop_process(process)


def _secure(url: str, pki: Path, who: str = "engineer", **overrides: Any) -> OpcUaDriver:
    spec: dict[str, Any] = {
        "security": {
            "policy": "Basic256Sha256",
            "mode": "SignAndEncrypt",
            "certificate": str(pki / "clients" / f"{who}.der"),
            "private_key": str(pki / "clients" / f"{who}.pem"),
        },
        "username": "operator",
        "password_env": PASSWORD_ENV,
        "reconnect": {"connect_attempts": 1},
    }
    spec.update(overrides)
    return OpcUaDriver("reactor", instrument(url, **spec), DriverContext())


@pytest.mark.parametrize("mode", ["SignAndEncrypt", "Sign"])
async def test_secure_session_with_username_reads_and_writes(
    secure_url: str, pki: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    security = {
        "policy": "Basic256Sha256",
        "mode": mode,
        "certificate": str(pki / "clients/engineer.der"),
        "private_key": str(pki / "clients/engineer.pem"),
        "server_certificate": str(pki / "server/server_cert.der"),
    }
    opcua = _secure(secure_url, pki, security=security)
    await opcua.connect()
    try:
        await opcua.write("ph_sp", 5.5)
        readings = await opcua.read(["ph_sp", "temperature"])
    finally:
        await opcua.close()
    assert readings["ph_sp"].value == 5.5
    assert readings["temperature"].unit == "degC"


async def test_wrong_password_is_a_clear_login_error(
    secure_url: str, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "guess")
    with pytest.raises(ProtocolError, match=r"refused the login of user 'operator'") as caught:
        await _secure(secure_url, pki).connect()
    assert caught.value.reply == "BadUserAccessDenied"
    assert PASSWORD_ENV in str(caught.value)


async def test_anonymous_login_is_refused(secure_url: str, pki: Path) -> None:
    with pytest.raises(ProtocolError, match="refused the login of user 'anonymous'"):
        await _secure(secure_url, pki, username=None, password_env=None).connect()


async def test_untrusted_certificate_is_a_clear_error(
    secure_url: str, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    with pytest.raises(ProtocolError, match="client certificate trusted") as caught:
        await _secure(secure_url, pki, who="stranger").connect()
    assert caught.value.reply == "BadCertificateUntrusted"


async def test_secure_channel_refused_by_the_server_is_a_typed_error() -> None:
    """node-opcua refuses an untrusted certificate at OpenSecureChannel; asyncua then raises a
    bare AssertionError, which must reach callers as a ProtocolError that names the cause."""
    with ChannelRefusingPeer() as peer:
        opcua = OpcUaDriver(
            "reactor", instrument(peer.url, reconnect={"connect_attempts": 1}), DriverContext()
        )
        with pytest.raises(ProtocolError, match="refused to open the secure channel") as caught:
            await opcua.connect()
        await opcua.close()
    assert "not trust this client" in str(caught.value)
    assert peer.refused == 1


REFUSED_CONFIG = """
mdf: {{id: refused, domain: chemistry, site: KR-TEST}}
storage: {{data_dir: {var}/data, state_dir: {var}/state, runtime_dir: {var}/run}}
instruments:
  reactor:
    driver: opcua
    endpoint: {url}
    timeout: 3
    reconnect: {{connect_attempts: 1}}
    channels:
      temperature: {{unit: degC, node: "ns=2;s=Reactor.Temperature"}}
"""


def test_serve_shows_a_refused_channel_unavailable_and_retries(tmp_path: Path) -> None:
    """Under `mdfd serve` the health task used to die on the AssertionError: the instrument
    stayed "connecting" with no error and was never tried again."""
    with ChannelRefusingPeer() as peer:
        config = tmp_path / "mdf.yaml"
        config.write_text(REFUSED_CONFIG.format(var=tmp_path / "var", url=peer.url))
        daemon = Daemon(config).start()
        try:
            seen: dict[str, Any] = {}

            def retried() -> bool:
                seen.update(daemon.get("/status")["instruments"]["reactor"])
                return seen["errors"] >= 2 and peer.refused >= 2

            wait_until(retried, "the refused instrument to be retried", daemon)
        finally:
            daemon.stop()
    assert seen["state"] == "unavailable"
    assert "refused to open the secure channel" in seen["error"]


async def test_missing_password_variable_is_named(
    secure_url: str, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(ProtocolError, match=f"{PASSWORD_ENV} .password_env. is not set"):
        await _secure(secure_url, pki).connect()


async def test_server_certificate_is_generated_once_and_reused(secure_url: str, pki: Path) -> None:
    directory = pki / "server"
    certificate = directory / CERTIFICATE_FILE
    assert (directory / KEY_FILE).is_file()
    before = certificate.read_bytes()
    await ensure_certificate(directory, "urn:mdfd:sim:reactor:reactor")
    assert certificate.read_bytes() == before


def test_probe_names_the_refused_channel_without_a_traceback(tmp_path: Path) -> None:
    with ChannelRefusingPeer() as peer:
        config = tmp_path / "mdf.yaml"
        config.write_text(REFUSED_CONFIG.format(var=tmp_path / "var", url=peer.url))
        result = mdfd("probe", "--config", str(config), "reactor")
    assert result.returncode == 1
    assert "refused to open the secure channel" in result.stderr
    assert "Traceback" not in result.stderr
