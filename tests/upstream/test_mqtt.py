"""The MQTT publisher against a real Mosquitto broker and a real subscriber."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import aiomqtt
import pytest

from .conftest import (
    MDF_ID,
    SITE,
    MakeMdf,
    Mosquitto,
    Subscriber,
    expected_ids,
    mqtt_publisher,
    until,
)

RECORDS_TOPIC = f"mdf/{SITE}/{MDF_ID}/records"
STATUS_TOPIC = f"mdf/{SITE}/{MDF_ID}/status"


async def test_subscriber_receives_every_record_as_published(
    mdf: MakeMdf, mosquitto: Mosquitto
) -> None:
    async with Subscriber(mosquitto.port, [RECORDS_TOPIC, STATUS_TOPIC]) as subscriber:
        service, points = await mdf(mqtt_publisher(mosquitto.port))
        for index in range(50):
            await points.complete(index, service.record_hook)
        assert await service.drain_until_idle(30)
        await until(lambda: set(subscriber.ids) == expected_ids(points.run_id, 50))

        first = json.loads(subscriber.messages[RECORDS_TOPIC][0])
        assert first["schema"] == "mdfd.record/1"
        assert first["provenance"]["mdf"] == {"id": MDF_ID, "domains": ["metal"], "site": SITE}
        await until(lambda: subscriber.messages.get(STATUS_TOPIC, [])[-1:] == [b"online"])


async def test_broker_restart_mid_stream_loses_nothing(mdf: MakeMdf, mosquitto: Mosquitto) -> None:
    async with Subscriber(mosquitto.port, [RECORDS_TOPIC]) as subscriber:
        service, points = await mdf(mqtt_publisher(mosquitto.port))
        for index in range(200):
            await points.complete(index, service.record_hook)
            if index == 60:
                await until(lambda: len(subscriber.ids) > 20, what="records before the restart")
                await asyncio.to_thread(mosquitto.stop)
            if index == 140:
                await until(lambda: service.drains[0].status.failures > 0, what="a failure")
                await asyncio.to_thread(mosquitto.start)
            if index % 20 == 0:
                await asyncio.sleep(0.01)
        assert await service.drain_until_idle(60)
        await until(lambda: set(subscriber.ids) == expected_ids(points.run_id, 200), within=60)
        [status] = (await service.status())["publishers"]
        assert (status["pending"], status["dead_letters"]) == (0, 0)


async def test_status_is_retained_online_then_offline_on_close(
    mdf: MakeMdf, mosquitto: Mosquitto
) -> None:
    service, points = await mdf(mqtt_publisher(mosquitto.port))
    await points.complete(0, service.record_hook)
    assert await service.drain_until_idle(30)
    # A dashboard subscribing later still sees the retained state.
    async with Subscriber(mosquitto.port, ["mdf/+/+/status"]) as dashboard:
        await until(lambda: dashboard.messages.get(STATUS_TOPIC) == [b"online"])
        await service.stop()
        await until(lambda: dashboard.messages[STATUS_TOPIC][-1] == b"offline")


async def test_broker_credentials_from_the_environment(mdf: MakeMdf, tmp_path, monkeypatch) -> None:
    broker = Mosquitto(tmp_path / "secured", users={"mdf-01": "right-password"})
    await asyncio.to_thread(broker.start)
    try:
        monkeypatch.setenv("UPSTREAM_MQTT_PASSWORD", "wrong-password")
        service, points = await mdf(
            mqtt_publisher(broker.port, username="mdf-01", password_env="UPSTREAM_MQTT_PASSWORD")
        )
        await points.complete(0, service.record_hook)
        assert not await service.drain_until_idle(1.0)
        [status] = (await service.status())["publishers"]
        assert status["state"] == "blocked"
        assert "refuses our credentials" in status["last_error"]
        assert status["pending"] == 1
        await service.stop()

        monkeypatch.setenv("UPSTREAM_MQTT_PASSWORD", "right-password")
        await service.start()
        assert await service.drain_until_idle(30)
        [status] = (await service.status())["publishers"]
        assert (status["pending"], status["delivered"]) == (0, 1)
    finally:
        await asyncio.to_thread(broker.stop)


def _failures_logged(err: str) -> list[dict]:
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [e for e in events if e.get("component") == "upstream" and "error" in e]


async def test_broker_restart_is_logged_as_a_lost_connection_not_credentials(
    mdf: MakeMdf, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    service, points = await mdf(mqtt_publisher(mosquitto.port))
    await points.complete(0, service.record_hook)
    assert await service.drain_until_idle(30)
    await asyncio.to_thread(mosquitto.stop)
    await points.complete(1, service.record_hook)
    await until(lambda: service.drains[0].status.failures > 0, what="a failure")
    [status] = (await service.status())["publishers"]
    assert status["state"] == "retrying"
    await asyncio.to_thread(mosquitto.start)
    assert await service.drain_until_idle(60)

    failures = _failures_logged(capsys.readouterr().err)
    assert {e["level"] for e in failures} == {"warning"}
    assert not [e for e in failures if "credentials" in e["error"]]
    assert "broker restarted or unreachable" in failures[0]["event"] + failures[0]["error"]
    refused = [e for e in failures if e["event"] == "delivery failed; will retry"]
    assert "Connection refused" in refused[0]["error"]


async def test_idle_publisher_replaces_a_stale_offline_with_online_at_start(
    mdf: MakeMdf, mosquitto: Mosquitto
) -> None:
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="earlier-life") as old:
        await old.publish(STATUS_TOPIC, b"offline", qos=1, retain=True)
    async with Subscriber(mosquitto.port, ["mdf/+/+/status"]) as dashboard:
        await until(lambda: dashboard.messages.get(STATUS_TOPIC) == [b"offline"])
        service, _points = await mdf(mqtt_publisher(mosquitto.port))
        # No record is queued: the daemon is online because it runs, not because it delivered.
        await until(lambda: dashboard.messages[STATUS_TOPIC][-1:] == [b"online"], what="online")
        [status] = (await service.status())["publishers"]
        assert (status["pending"], status["delivered"]) == (0, 0)


async def test_a_broker_whose_port_was_taken_first_starts_on_a_fresh_one(tmp_path: Path) -> None:
    """free_port's race, provoked: another process listens on the broker's port before it
    starts. Waiting for the port alone would have taken that listener for the broker."""
    broker = Mosquitto(tmp_path / "broker")
    taken = broker.port
    with socket.socket() as thief:
        thief.bind(("127.0.0.1", taken))
        thief.listen()
        await asyncio.to_thread(broker.start)
    try:
        assert broker.port != taken
        async with Subscriber(broker.port, [STATUS_TOPIC]):
            pass  # an MQTT session on the new port: the broker itself answers there
    finally:
        await asyncio.to_thread(broker.stop)
