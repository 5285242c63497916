"""Shared pieces of the OPC-UA tests: the reactor's channel map, configs, client certificates."""

from __future__ import annotations

import asyncio
import socket
import textwrap
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from asyncua import ua
from asyncua.common.connection import SecureConnection, TransportLimits
from asyncua.crypto.cert_gen import (
    dump_private_key_as_pem,
    generate_private_key,
    generate_self_signed_app_certificate,
)
from asyncua.crypto.security_policies import SecurityPolicyNone
from asyncua.ua.ua_binary import struct_to_binary, uatcp_to_binary
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from mdfd.drivers.opcua import OpcUaInstrument
from tests.support import Child, mdf_config, start_simulators

NAMESPACE = "urn:mdfd:sim:reactor"
T = TypeVar("T")

# The channel map of config/sim.yaml plus typed extras and the fault switches.
CHANNELS: dict[str, dict[str, Any]] = {
    "temperature": {"unit": "degC", "node": "s=Reactor.Temperature", "subscribe": True},
    "temperature_sp": {
        "unit": "degC",
        "node": "s=Reactor.TemperatureSetpoint",
        "writable": True,
        "limits": {"min": 20, "max": 450},
    },
    "pressure": {"unit": "bar", "node": "s=Reactor.Pressure"},
    "pressure_sp": {"unit": "bar", "node": "s=Reactor.PressureSetpoint", "writable": True},
    "feed_flow": {"unit": "L/min", "node": "s=Feed.Flow"},
    "feed_flow_sp": {"unit": "L/min", "node": "s=Feed.FlowSetpoint", "writable": True},
    "valve": {"unit": "percent", "node": "s=Feed.ValvePosition"},
    "ph": {"unit": "dimensionless", "node": "s=Bath.pH"},
    "ph_sp": {"unit": "dimensionless", "node": "s=Bath.pHSetpoint", "writable": True},
    "conversion": {"unit": "percent", "node": f"nsu={NAMESPACE};s=Analyser.Conversion"},
    "selectivity": {"unit": "percent", "node": "s=Analyser.Selectivity", "subscribe": True},
    "agitator": {"unit": "rpm", "node": "s=Reactor.AgitatorSpeed", "writable": True},
    "pump": {"node": "s=Feed.PumpRunning", "writable": True},
    "sample_interval": {"unit": "s", "node": "s=Analyser.SampleInterval", "writable": True},
    "fault_bad": {"node": "s=Faults.Bad", "writable": True},
    "fault_invalid": {"node": "s=Faults.Invalid", "writable": True},
    "fault_stuck": {"node": "s=Faults.Stuck", "writable": True},
    "fault_restart": {"node": "s=Faults.Restart", "writable": True},
}


def write_config(var: Path, port: int = 0, extra: str = "") -> Path:
    """An MDF config whose only simulator is the reactor, on `port` (0: the simulator picks
    one and `start_simulator` returns where); `extra` adds indented simulator settings."""
    reactor = {
        "kind": "reactor",
        "port": port,
        "update_interval": 0.05,
        "restart_downtime": 0.3,
        **(yaml.safe_load(textwrap.dedent(extra)) or {}),
    }
    return mdf_config(
        var,
        mdf={"id": "opcua-test", "domain": "chemistry", "site": "KR-TEST"},
        storage={"data_dir": str(var / "data"), "state_dir": str(var / "state")},
        vocabulary=None,
        simulation={"time_scale": 600, "seed": 11},
        safety=None,
        instruments={
            "reactor": {
                "driver": "opcua",
                "endpoint": f"opc.tcp://127.0.0.1:{port}/mdfd/reactor",
                "namespace": NAMESPACE,
                "channels": {
                    "temperature": {
                        "unit": "degC",
                        "node": "s=Reactor.Temperature",
                        "subscribe": True,
                    },
                    "temperature_sp": {
                        "unit": "degC",
                        "node": "s=Reactor.TemperatureSetpoint",
                        "writable": True,
                    },
                },
            }
        },
        simulators={"reactor": reactor},
    )


def start_simulator(config: Path, timeout: float = 60.0) -> tuple[Child, str]:
    """`mdfd sim` as its own process; returns it and the reactor's endpoint URL."""
    process, endpoints = start_simulators(config, logs=config.parent, timeout=timeout)
    return process, endpoints["reactor"]["opcua"]


def instrument(url: str, **overrides: Any) -> OpcUaInstrument:
    spec: dict[str, Any] = {
        "driver": "opcua",
        "endpoint": url,
        "namespace": NAMESPACE,
        "timeout": 3.0,
        "publishing_interval": 50,
        "sampling_interval": 0,
        "reconnect": {"initial_delay": 0.2, "max_delay": 1.0, "connect_attempts": 2},
        "channels": CHANNELS,
    }
    spec.update(overrides)
    return OpcUaInstrument.model_validate(spec)


def client_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A client application certificate (DER) and key (PEM), as an engineer would make one."""
    directory.mkdir(parents=True, exist_ok=True)
    key = generate_private_key()
    uri = f"urn:mdfd:test:{name}"
    certificate = generate_self_signed_app_certificate(
        key,
        uri,
        {"organizationName": "mdfd tests"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName(socket.gethostname())],
        extended=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    cert_path, key_path = directory / f"{name}.der", directory / f"{name}.pem"
    cert_path.write_bytes(certificate.public_bytes(Encoding.DER))
    key_path.write_bytes(dump_private_key_as_pem(key))
    return cert_path, key_path


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool] = lambda _: True,
    within: float = 20.0,
    interval: float = 0.05,
) -> T:
    """Call `probe` until it returns a value `accept` likes (errors count as not yet)."""
    last: object = None
    try:
        async with asyncio.timeout(within):
            while True:
                try:
                    value = await probe()
                except Exception as exc:
                    last = exc
                else:
                    if accept(value):
                        return value
                    last = value
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"not accepted within {within} s; last: {last!r}") from None


class ChannelRefusingPeer:
    """An OPC-UA server that refuses every secure channel the way node-opcua refuses a client
    certificate it does not trust: an OpenSecureChannel response whose ServiceResult is
    BadCertificateUntrusted. Runs its own event loop in a thread, so a test can point a
    separate `mdfd serve` process at it; `refused` counts the channels it refused."""

    def __init__(self) -> None:
        self.refused = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="refusing-peer", daemon=True)

    @property
    def url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/refusing"

    def __enter__(self) -> ChannelRefusingPeer:
        self._thread.start()
        if not self._started.wait(10):
            raise AssertionError("refusing peer did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._refuse, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            # Connections still open (a client retrying) end here, sockets closed, before
            # the loop does: left pending they would be torn down by the garbage collector.
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _message(reader)  # Hello
            writer.write(
                uatcp_to_binary(ua.MessageType.Acknowledge, ua.Acknowledge(0, 65535, 65535, 0, 0))
            )
            await _message(reader)  # OpenSecureChannel
            response = ua.OpenSecureChannelResponse()
            response.ResponseHeader.ServiceResult = ua.StatusCode(
                ua.StatusCodes.BadCertificateUntrusted
            )
            channel = SecureConnection(SecurityPolicyNone(), TransportLimits(65535, 65535, 0, 0))
            writer.write(
                channel.message_to_binary(
                    struct_to_binary(response), ua.MessageType.SecureOpen, request_id=1
                )
            )
            await writer.drain()
            self.refused += 1
            await reader.read()  # until the client hangs up
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _message(reader: asyncio.StreamReader) -> bytes:
    """One OPC-UA TCP message: an 8-byte header whose last four bytes are its size."""
    header = await reader.readexactly(8)
    return await reader.readexactly(int.from_bytes(header[4:8], "little") - 8)
