"""`mdfd run` / `resume` / `outbox` / `schema record` as processes: the file spool end to end,
and kill -9 between completing points and publishing them."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
from pathlib import Path

import jsonschema
import pytest

from mdfd.daemons.store import StateDB
from tests.support import REPO, mdfd, start_mdfd, stop_process

from .conftest import (
    MDF_ID,
    SITE,
    Mosquitto,
    Receiver,
    Subscriber,
    expected_ids,
    http_publisher,
    mqtt_publisher,
    until,
    write_config,
    write_recipe,
)


def test_run_spools_one_line_per_completed_point(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    config = write_config(tmp_path, [f'{{type: file, name: spool, directory: "{spool}"}}'])
    result = mdfd(
        "run", str(write_recipe(tmp_path, "[200, 250, 300]")), "--config", str(config), "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    run_id = summary["run_id"]

    lines = (spool / f"{run_id}.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == summary["points_done"] == 3
    assert {r["id"] for r in records} == expected_ids(run_id, 3)

    schema = json.loads(mdfd("schema", "record").stdout)
    for record in records:
        jsonschema.validate(record, schema)
    first = records[0]
    provenance = first["provenance"]
    assert provenance["mdf"] == {"id": MDF_ID, "domains": ["metal"], "site": SITE}
    assert provenance["recipe"]["name"] == "upstream-test"
    assert provenance["recipe"]["version"] == "2.1"
    assert len(provenance["recipe"]["sha256"]) == 64
    assert provenance["run_id"] == run_id
    assert provenance["point"] == {
        "index": 0,
        "parameters": {"temperature": 200.0, "time": 0.5},
        "chosen_by": None,  # a fixed sweep: no optimiser chose the point
    }
    assert provenance["instruments"] == {
        "furnace": "mdfd,memory,0,1.0",
        "meter": "mdfd,memory,0,1.0",
    }
    assert provenance["software"].startswith("mdfd ")
    assert provenance["started_at"] < provenance["ended_at"]
    items = {
        i["code"]: i
        for s in ("raw_materials", "composition", "process", "properties")
        for i in first[s]
    }
    assert items["RM_ALLOY_GRADE"] == {"code": "RM_ALLOY_GRADE", "value": "C11000", "unit": ""}
    assert items["RM_WIRE_DIAMETER"] == {"code": "RM_WIRE_DIAMETER", "value": 1.0, "unit": "mm"}
    assert items["CMP_CU"]["value"] == 99.92
    assert items["PRC_ANNEAL_TEMP"] == {"code": "PRC_ANNEAL_TEMP", "value": 200.0, "unit": "degC"}
    assert items["PRC_ANNEAL_TIME"] == {"code": "PRC_ANNEAL_TIME", "value": 30.0, "unit": "min"}
    furnace = items["PRC_FURNACE_TEMP_MEAN"]
    assert furnace["value"] == pytest.approx(200.0, abs=1.0)
    assert furnace["n"] == 5
    assert furnace["std"] >= 0
    assert items["PRP_ELECTRICAL_RESISTIVITY"]["value"] == pytest.approx(1.8)
    assert first["data"]["file"] == Path(summary["data_file"]).name
    assert first["data"]["point_index"] == 0
    assert first["data"]["summary"] == "/entry/summary"
    assert set(first["data"]["channels"]) == {"meter.resistivity", "furnace.temperature"}

    status = mdfd("outbox", "--config", str(config), "--json")
    assert status.returncode == 0, status.stderr
    [spool_status] = json.loads(status.stdout)["publishers"]
    assert (spool_status["pending"], spool_status["delivered"]) == (0, 3)


async def _mdfd(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mdfd.daemons.cli.mdfd",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def _completed_points(state: Path) -> int:
    try:
        with sqlite3.connect(state) as connection:
            return connection.execute(
                "SELECT COUNT(*) FROM points WHERE status = 'completed'"
            ).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


async def test_kill_9_before_publishing_then_every_record_is_delivered(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    receiver = Receiver()  # its port bound, nothing listens yet: records cannot leave
    config = write_config(tmp_path, [http_publisher(receiver.port), mqtt_publisher(mosquitto.port)])
    recipe = write_recipe(tmp_path, str(list(range(200, 320, 10))))
    state = tmp_path / "var" / "state" / "state.sqlite3"
    status_topic = f"mdf/{SITE}/{MDF_ID}/status"

    async with Subscriber(mosquitto.port, [f"mdf/{SITE}/{MDF_ID}/#"]) as subscriber:
        process = start_mdfd("run", str(recipe), "--config", str(config), "--json", logs=tmp_path)
        try:
            async with asyncio.timeout(60):
                while await asyncio.to_thread(_completed_points, state) < 3:
                    assert process.poll() is None, process.err_text()[-3000:]
                    await asyncio.sleep(0.02)
            process.send_signal(signal.SIGKILL)
        finally:
            await asyncio.to_thread(stop_process, process)
        assert process.returncode == -signal.SIGKILL
        # The broker publishes the daemon's last will: dashboards see it go.
        await until(lambda: subscriber.messages.get(status_topic, [])[-1:] == [b"offline"])

        done = await asyncio.to_thread(_completed_points, state)
        with sqlite3.connect(state) as connection:
            [(run_id,)] = connection.execute("SELECT id FROM runs").fetchall()
        status = await _mdfd("outbox", "--config", str(config), "--json")
        out, err = await status.communicate()
        assert status.returncode == 0, err.decode()
        platform, _fleet = json.loads(out)["publishers"]
        assert platform["pending"] == done >= 3
        assert f"POST http://127.0.0.1:{receiver.port}/records" in platform["last_error"]
        assert not receiver.ids

        await receiver.start()
        try:
            resume = await _mdfd("resume", run_id, "--config", str(config), "--json")
            out, err = await resume.communicate()
            assert resume.returncode == 0, err.decode()
            assert json.loads(out.decode().strip().splitlines()[-1])["points_done"] == 12
            assert set(receiver.ids) == expected_ids(run_id, 12)
        finally:
            await receiver.stop()
        await until(lambda: set(subscriber.ids) == expected_ids(run_id, 12))


async def test_idle_daemon_registers_its_will_and_the_broker_says_offline_after_kill_9(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = write_config(tmp_path, [mqtt_publisher(mosquitto.port)])
    status_topic = f"mdf/{SITE}/{MDF_ID}/status"
    async with Subscriber(mosquitto.port, [status_topic]) as dashboard:
        process = start_mdfd("serve", "--config", str(config), logs=tmp_path)
        try:
            await until(lambda: dashboard.messages.get(status_topic, [])[-1:] == [b"online"])
            process.send_signal(signal.SIGKILL)
        finally:
            await asyncio.to_thread(stop_process, process)
        assert process.returncode == -signal.SIGKILL
        await until(lambda: dashboard.messages[status_topic][-1:] == [b"offline"])


async def test_idle_daemon_reconnects_after_a_broker_restart_and_its_will_still_fires(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = write_config(tmp_path, [mqtt_publisher(mosquitto.port)])
    status_topic = f"mdf/{SITE}/{MDF_ID}/status"
    broker_log = mosquitto.root / "mosquitto.log"
    connected = f"as mdfd-{MDF_ID}-fleet"
    process = start_mdfd("serve", "--config", str(config), logs=tmp_path)
    try:
        await until(lambda: broker_log.read_text().count(connected) == 1, what="connected")
        await asyncio.to_thread(mosquitto.stop)
        await asyncio.to_thread(mosquitto.start)
        # Nothing is queued: only the publisher's own watch can bring it back.
        await until(lambda: broker_log.read_text().count(connected) == 2, what="reconnected")
        async with Subscriber(mosquitto.port, [status_topic]) as dashboard:
            await until(lambda: dashboard.messages.get(status_topic, [])[-1:] == [b"online"])
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait, 30)
            await until(lambda: dashboard.messages[status_topic][-1:] == [b"offline"])
    finally:
        await asyncio.to_thread(stop_process, process)
    lost = "connection to the MQTT broker lost (broker restarted or unreachable)"
    assert lost in process.err_text()


def test_outbox_drain_with_nothing_queued_succeeds_while_the_broker_is_down(
    tmp_path: Path,
) -> None:
    from tests.support import refused_port

    with refused_port() as port:  # nothing listens there, nor can while the drain runs
        config = write_config(tmp_path, [mqtt_publisher(port)])
        asyncio.run(_empty_state_database(tmp_path / "var" / "state"))  # an MDF that ran before
        done = mdfd("outbox", "drain", "--config", str(config), "--within", "30", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    [fleet] = json.loads(done.stdout)["publishers"]
    assert fleet["pending"] == 0


async def _empty_state_database(state_dir: Path) -> None:
    state = StateDB(state_dir / "state.sqlite3")
    await state.open()
    await state.close()
