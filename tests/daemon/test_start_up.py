"""Start-up of `mdfd serve --simulate` (ADR 0053): the control socket serves, READY=1 is sent,
and only then do the simulators start — concurrently — and the instruments connect, without
a burst of refused connections on the way."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from tests.support import SIM_CONFIG, sim_env

from .harness import Daemon, wait_until
from .test_notify_and_security import Receiver


def _events(log: str) -> list[dict[str, Any]]:
    entries = []
    for line in log.splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


def test_ready_comes_before_the_simulators_and_every_instrument_then_connects(
    tmp_path: Path,
) -> None:
    address = f"/tmp/mdfd-notify-{uuid.uuid4().hex[:12]}.sock"
    receiver = Receiver(address)
    env = sim_env(tmp_path / "var", NOTIFY_SOCKET=address)
    env.pop("WATCHDOG_USEC", None)
    daemon = Daemon(SIM_CONFIG, "--simulate", "--log-json", env=env, log=tmp_path / "serve.log")
    daemon.socket = tmp_path / "var" / "sim-mdf-01" / "run" / "control.sock"
    daemon.start()
    try:

        def states() -> dict[str, str]:
            return {n: h["state"] for n, h in daemon.get("/status")["instruments"].items()}

        wait_until(lambda: set(states().values()) == {"ok"}, "every instrument ok", daemon)
        assert set(states()) == {"furnace", "reactor", "meter"}
    finally:
        daemon.stop()
        messages = receiver.close()
        Path(address).unlink()

    assert any(m.get("READY") == "1" for m in messages)
    events = _events(daemon.log_text())
    names = [e["event"] for e in events]
    serving = names.index("daemon serving")
    started = [i for i, e in enumerate(events) if e["event"] == "simulator started"]
    assert {events[i]["simulator"] for i in started} == {"furnace", "reactor", "meter"}
    # The control socket and READY=1 do not wait for the simulators...
    assert names.index("control API listening") < serving < min(started)
    # ...and the monitors wait for them: no instrument was ever tried before it listened.
    assert "instrument unavailable" not in names
    first_available = names.index("instrument available")
    assert max(started) < first_available
