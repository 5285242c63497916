"""The HTTP publisher against a real aiohttp receiver: outages, rejections, throttling, auth."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import MakeMdf, Receiver, expected_ids, http_publisher, until

RECORDS = 300


async def test_receiver_down_mid_stream_ends_with_every_record(
    mdf: MakeMdf, receiver: Receiver
) -> None:
    service, points = await mdf(http_publisher(receiver.port))
    for index in range(RECORDS):
        await points.complete(index, service.record_hook)
        if index == 100:
            await until(lambda: len(receiver.ids) > 50, what="delivery before the outage")
            await receiver.stop()
            seen_before_outage = len(receiver.ids)
        if index == 200:
            [status] = (await service.status())["publishers"]
            assert status["pending"] > 0
            await until(lambda: service.drains[0].status.failures > 0, what="a failed attempt")
            await receiver.start()
        if index % 20 == 0:
            await asyncio.sleep(0.01)

    assert await service.drain_until_idle(60)
    assert seen_before_outage < RECORDS
    assert set(receiver.ids) == expected_ids(points.run_id, RECORDS)
    assert len(set(receiver.keys)) == len(receiver.keys)
    [status] = (await service.status())["publishers"]
    assert (status["pending"], status["dead_letters"], status["delivered"]) == (0, 0, RECORDS)
    assert "POST" in status["last_error"]


async def test_permanent_rejection_dead_letters_only_the_bad_record(
    mdf: MakeMdf, receiver: Receiver
) -> None:
    service, points = await mdf(http_publisher(receiver.port, batch_size=10))
    bad = expected_ids(points.run_id, 8) - expected_ids(points.run_id, 7)
    receiver.reject = set(bad)
    for index in range(30):
        await points.complete(index, service.record_hook)
    assert await service.drain_until_idle(30)

    assert set(receiver.ids) == expected_ids(points.run_id, 30) - bad
    [dead] = await service.dead_letters()
    assert {dead.record_id} == bad
    assert "HTTP 422" in dead.reason
    assert "record fails platform validation" in dead.reason
    [status] = (await service.status())["publishers"]
    assert (status["pending"], status["dead_letters"]) == (0, 1)

    receiver.reject = set()
    assert await service.retry_dead_letters() == 1
    assert await service.drain_until_idle(30)
    assert set(receiver.ids) == expected_ids(points.run_id, 30)
    assert await service.dead_letters() == []


@pytest.mark.parametrize("statuses", [[503, 500, 502], [429, 429], [408, 503]])
async def test_throttling_and_server_errors_are_retried(
    mdf: MakeMdf, receiver: Receiver, statuses: list[int]
) -> None:
    service, points = await mdf(http_publisher(receiver.port))
    receiver.script.extend(statuses)
    for index in range(40):
        await points.complete(index, service.record_hook)
    assert await service.drain_until_idle(30)

    assert set(receiver.ids) == expected_ids(points.run_id, 40)
    assert sum(receiver.statuses[s] for s in set(statuses)) == len(statuses)
    assert await service.dead_letters() == []


async def test_wrong_token_is_reported_and_records_stay_queued(
    mdf: MakeMdf, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.token = "the-right-token"
    monkeypatch.setenv("UPSTREAM_TEST_TOKEN", "a-stale-token")
    service, points = await mdf(http_publisher(receiver.port, token_env="UPSTREAM_TEST_TOKEN"))
    for index in range(5):
        await points.complete(index, service.record_hook)
    assert not await service.drain_until_idle(1.0)

    [status] = (await service.status())["publishers"]
    assert status["state"] == "blocked"
    assert status["blocked"] is True
    assert "HTTP 401" in status["last_error"]
    assert "UPSTREAM_TEST_TOKEN" in status["last_error"]
    assert (status["pending"], status["dead_letters"]) == (5, 0)
    assert receiver.statuses[401] >= 1
    assert not receiver.ids
    [persisted] = await service.depth()  # what `mdfd outbox` shows after the process
    assert "HTTP 401" in (persisted.last_error or "")


async def test_token_is_sent_as_bearer(
    mdf: MakeMdf, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.token = "s3cret"
    monkeypatch.setenv("UPSTREAM_TEST_TOKEN", "s3cret")
    service, points = await mdf(http_publisher(receiver.port, token_env="UPSTREAM_TEST_TOKEN"))
    for index in range(3):
        await points.complete(index, service.record_hook)
    assert await service.drain_until_idle(30)
    assert set(receiver.ids) == expected_ids(points.run_id, 3)


async def test_missing_token_variable_blocks_only_that_publisher(
    mdf: MakeMdf, receiver: Receiver, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UPSTREAM_UNSET_TOKEN", raising=False)
    spool = tmp_path / "spool"
    service, points = await mdf(
        http_publisher(receiver.port, token_env="UPSTREAM_UNSET_TOKEN"),
        f'{{type: file, name: spool, directory: "{spool}"}}',
    )
    for index in range(4):
        await points.complete(index, service.record_hook)
    await until(lambda: service.drains[1].idle.is_set() and (spool / "run-1.jsonl").exists())
    assert len((spool / "run-1.jsonl").read_text().splitlines()) == 4

    http, file = (await service.status())["publishers"]
    assert http["state"] == "blocked"
    assert "UPSTREAM_UNSET_TOKEN" in http["last_error"]
    assert (http["pending"], file["pending"]) == (4, 0)


async def test_a_refused_api_key_header_names_its_variable(
    mdf: MakeMdf, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.token = "expected-as-bearer"  # the platform wants a token, gets only a header
    monkeypatch.setenv("UPSTREAM_TEST_KEY", "an-api-key")
    service, points = await mdf(
        http_publisher(receiver.port, headers_env={"X-Api-Key": "UPSTREAM_TEST_KEY"})
    )
    await points.complete(0, service.record_hook)
    assert not await service.drain_until_idle(1.0)
    [status] = (await service.status())["publishers"]
    assert status["state"] == "blocked"
    assert "check $UPSTREAM_TEST_KEY" in status["last_error"]
    assert "an-api-key" not in status["last_error"]
