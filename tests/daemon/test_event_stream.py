"""The event stream: an idle instrument's health probe is a `readings` event of no point (what
the operator page shows of it), a run's own stream leaves such readings out, and a run's stream
opened after the run started begins with its `run_start`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, cast

from jsonschema import Draft202012Validator

from mdfd.daemons.engine.events import Readings
from mdfd.daemons.serve import api
from mdfd.daemons.serve.controlplane import ControlPlane
from tests.support import mdfd

from .harness import (
    WAIT,
    Daemon,
    _UnixConnection,
    environment,
    submit,
    write_config,
    write_recipe,
)


def test_an_idle_instruments_probe_is_a_reading_of_no_point(tmp_path: Path) -> None:
    daemon = Daemon(write_config(tmp_path), env=environment()).start()
    schema = json.loads(mdfd("schema", "events").stdout)
    probed: dict[str, Any] = {}
    connection = _UnixConnection(daemon.socket)
    try:
        connection.request("GET", "/events")
        response = connection.getresponse()
        assert response.status == 200
        deadline = time.monotonic() + WAIT
        while len(probed) < 2 and time.monotonic() < deadline:  # a probe every 5 s
            event = json.loads(response.readline())
            assert list(Draft202012Validator(schema).iter_errors(event)) == [], event
            if event["event"] == "readings":
                assert event["point"] is None  # no run: only probes read
                probed.update(event["values"])
    finally:
        connection.close()
        daemon.stop()
    assert probed == {"furnace.temperature": 25.0, "meter.resistivity": 1.8}


class _Executing:
    """The one part of the control plane `_concerns` asks: which run executes."""

    def __init__(self, run: str) -> None:
        self.run = run

    def executing(self) -> str:
        return self.run


def test_a_runs_stream_leaves_out_the_probes_of_idle_instruments() -> None:
    plane = cast(ControlPlane, _Executing("run-1"))
    probe = Readings(point=None, values={"meter.resistivity": 1.8})
    acquired = Readings(point=3, values={"furnace.temperature": 410.0})
    assert not api._concerns(probe, "run-1", plane)
    assert api._concerns(acquired, "run-1", plane)
    assert not api._concerns(acquired, "run-2", plane)


def test_a_runs_stream_opened_after_it_started_begins_with_its_start(tmp_path: Path) -> None:
    """`mdfctl submit --watch` subscribes a moment after the run is queued; a run that starts
    in that moment must not lose its `run_start` (a CI run of the schema test did)."""
    config = write_config(tmp_path)
    daemon = Daemon(config, env=environment()).start()
    schema = Draft202012Validator(json.loads(mdfd("schema", "events").stdout))
    connection = _UnixConnection(daemon.socket)
    try:
        run = submit(config, write_recipe(tmp_path, temperatures="[1, 2, 3, 4, 5, 6]"))
        daemon.wait_status(run, "running")
        connection.request("GET", f"/events?run={run}")
        response = connection.getresponse()
        assert response.status == 200
        events = [json.loads(response.readline()) for _ in range(2)]
        while events[-1]["event"] != "point_end":  # on to a point's end: no second start
            events.append(json.loads(response.readline()))
    finally:
        connection.close()
        daemon.stop()
    for event in events:
        assert list(schema.iter_errors(event)) == [], event
    kinds = [event["event"] for event in events]
    assert kinds[:2] == ["subscribed", "run_start"], kinds
    assert kinds.count("run_start") == 1, kinds
    assert events[1]["run"] == run
    assert events[1]["points_total"] == 6
