"""TLS is verified: against a private CA given by `ca_file` delivery works; without it the
server's certificate is refused (reported, retried, nothing lost)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .conftest import (
    MakeMdf,
    Mosquitto,
    Pki,
    Receiver,
    expected_ids,
    http_publisher,
    mqtt_publisher,
    until,
)


async def test_https_with_private_ca(mdf: MakeMdf, pki: Pki) -> None:
    receiver = Receiver(tls=pki.server_context())
    await receiver.start()
    try:
        service, points = await mdf(
            http_publisher(receiver.port, url=receiver.url, ca_file=str(pki.ca))
        )
        for index in range(10):
            await points.complete(index, service.record_hook)
        assert await service.drain_until_idle(30)
        assert set(receiver.ids) == expected_ids(points.run_id, 10)
    finally:
        await receiver.stop()


async def test_https_refuses_an_unknown_certificate(mdf: MakeMdf, pki: Pki) -> None:
    receiver = Receiver(tls=pki.server_context())
    await receiver.start()
    try:
        service, points = await mdf(http_publisher(receiver.port, url=receiver.url))
        await points.complete(0, service.record_hook)
        await until(lambda: service.drains[0].status.failures > 0)
        [status] = (await service.status())["publishers"]
        assert "CERTIFICATE_VERIFY_FAILED" in status["last_error"]
        assert status["pending"] == 1
        assert not receiver.ids
    finally:
        await receiver.stop()


async def test_mqtt_over_tls(mdf: MakeMdf, pki: Pki, tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "tls-broker", pki=pki)
    await asyncio.to_thread(broker.start)
    try:
        service, points = await mdf(mqtt_publisher(broker.port, tls=True, ca_file=str(pki.ca)))
        for index in range(10):
            await points.complete(index, service.record_hook)
        assert await service.drain_until_idle(30)
        [status] = (await service.status())["publishers"]
        assert (status["pending"], status["delivered"]) == (0, 10)
    finally:
        await asyncio.to_thread(broker.stop)
