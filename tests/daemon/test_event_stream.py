"""Health probes on the event stream: an idle instrument's reading is a `readings` event of no
point (what the operator page shows of it), and a run's own stream leaves such readings out."""

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

from .harness import WAIT, Daemon, _UnixConnection, environment, write_config


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
