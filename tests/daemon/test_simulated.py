"""The daemon on the simulated MDF (config/sim.yaml: Modbus furnace, OPC-UA reactor, SCPI meter
over real sockets), instruments that come and go, and SIGHUP reloads."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from tests.support import REPO, SIM_CONFIG, Child, sim_env, start_mdfd, stop_process

from .harness import (
    Daemon,
    environment,
    mdfctl,
    submit,
    wait_until,
    write_config,
    write_recipe,
)

SIM_RECIPE = """\
recipe: {name: sim-smoke, version: "1"}
sweep:
  parameters:
    temperature: {unit: degC, values: [300, 600]}
steps:
  - set: {meter.specimen: 1, furnace.running: true}
  - set: {furnace.setpoint: temperature}
  - dwell: 10 min
  - acquire: {channels: [meter.capacitance, furnace.temperature], rate: 0.1, count: 3}
record:
  process:
    - {code: PRC_SINTER_TEMP, from: temperature}
  properties:
    - {code: PRP_CAPACITANCE, from: meter.capacitance, stat: mean}
"""


def _sim_daemon(tmp_path: Path, env: dict[str, str], *args: str) -> Daemon:
    daemon = Daemon(SIM_CONFIG, *args, env=env, log=tmp_path / "serve.log")
    daemon.socket = tmp_path / "var" / "sim-mdf-01" / "run" / "control.sock"
    return daemon


def _states(daemon: Daemon) -> dict[str, str]:
    return {n: h["state"] for n, h in daemon.get("/status")["instruments"].items()}


def test_simulated_mdf_end_to_end(tmp_path: Path) -> None:
    env = sim_env(tmp_path / "var")
    daemon = _sim_daemon(tmp_path, env, "--simulate").start()
    try:
        wait_until(lambda: set(_states(daemon).values()) == {"ok"}, "instruments healthy", daemon)
        identities = {n: h["identity"] for n, h in daemon.get("/status")["instruments"].items()}
        assert all(identities.values()), identities
        recipe = tmp_path / "sim-smoke.yaml"
        recipe.write_text(SIM_RECIPE)
        watched = mdfctl("--socket", str(daemon.socket), "submit", str(recipe), "--watch", env=env)
        assert watched.returncode == 0, watched.stderr + daemon.log_text()[-3000:]
        run_id = watched.stdout.split()[1]
        run = daemon.run(run_id)
        assert run["status"] == "completed"
        capacitance = [p["summary"]["meter.capacitance"]["mean"] for p in run["points"]]
        assert all(c > 0 for c in capacitance), capacitance
        furnace = [p["summary"]["furnace.temperature"]["mean"] for p in run["points"]]
        assert furnace[1] > furnace[0]  # the simulated furnace heated towards 600 °C
        assert set(run["identities"]) == {"furnace", "meter", "reactor"}
    finally:
        daemon.stop()


def test_instruments_away_then_back(tmp_path: Path) -> None:
    env = sim_env(tmp_path / "var")
    daemon = _sim_daemon(tmp_path, env).start()
    simulators: Child | None = None
    try:
        wait_until(
            lambda: set(_states(daemon).values()) == {"unavailable"}, "all unavailable", daemon
        )
        status = daemon.get("/status")
        assert all(h["error"] for h in status["instruments"].values())
        recipe = tmp_path / "sim-smoke.yaml"
        recipe.write_text(SIM_RECIPE)
        run_id = submit(SIM_CONFIG, recipe, env=env)
        wait_until(
            lambda: daemon.get("/status")["daemon"]["state"] == "waiting for instruments",
            "the run to wait for its instruments",
            daemon,
        )
        assert daemon.run(run_id)["status"] == "queued"
        shown = mdfctl("--socket", str(daemon.socket), "status", env=env)
        assert "waiting for instruments: furnace, meter, reactor" in " ".join(shown.stdout.split())
        assert "(chemistry, metal, ceramic, textile; KR-SIM)" in " ".join(shown.stdout.split())
        # `mdfctl watch` right after submit: the run is still waiting, and watch waits for it.
        watcher = Child(
            [
                sys.executable,
                "-m",
                "mdfd.daemons.cli.mdfctl",
                "--socket",
                str(daemon.socket),
                "watch",
            ],
            logs=tmp_path,
            name="mdfctl-watch",
            env=env,
        )

        simulators = start_mdfd("sim", "--config", str(SIM_CONFIG), logs=tmp_path, env=env)
        # Reconnected in the background: the queued run starts by itself and completes.
        final = daemon.wait_status(run_id, "completed")
        assert final["points_done"] == 2
        code, watched, watch_errors = watcher.finish(timeout=60)
        assert code == 0, watch_errors
        assert watched.splitlines()[0] == f"run {run_id}: queued, waiting to start"
        assert watched.splitlines()[-1] == f"run {run_id} completed"
        wait_until(lambda: set(_states(daemon).values()) == {"ok"}, "healthy again", daemon)
        errors = [
            line
            for line in mdfctl(
                "--socket", str(daemon.socket), "metrics", env=env
            ).stdout.splitlines()
            if line.startswith("mdfd_instrument_errors_total")
        ]
        assert any(
            'instrument="furnace",source="monitor"' in e and not e.endswith(" 0.0") for e in errors
        ), errors

        stop_process(simulators)
        wait_until(lambda: _states(daemon)["furnace"] == "unavailable", "furnace gone", daemon)
    finally:
        if simulators is not None:
            stop_process(simulators)
        daemon.stop()


def test_sighup_applies_what_is_safe_and_refuses_the_rest(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    daemon = Daemon(config, env=environment()).start()
    try:
        original = config.read_text()
        moved = original.replace(f"{tmp_path / 'var'}/spool", f"{tmp_path / 'var'}/spool2")
        config.write_text(moved)
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "config reloaded" in daemon.log_text(), "reload applied", daemon)
        assert "upstream publishers" in daemon.log_text()
        first = submit(config, write_recipe(tmp_path, temperatures="[200]"))
        daemon.wait_status(first, "completed")
        wait_until(lambda: any((tmp_path / "var" / "spool2").glob("*.jsonl")), "new spool")

        # A run holds the instruments: changing them now is refused, and nothing applies.
        # Points of ~2 s: still running when paused, however loaded the machine.
        long_recipe = write_recipe(
            tmp_path, name="long", temperatures="[1, 2, 3, 4]", dwell="100 min"
        )
        long = submit(config, long_recipe)
        daemon.wait_status(long, "running")
        assert mdfctl("--config", str(config), "pause").returncode == 0
        config.write_text(moved.replace("initial: 1.8", "initial: 2.5"))
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "instruments changed while run" in daemon.log_text(), "refusal")
        # A config that does not validate is refused too; the daemon serves on.
        config.write_text(moved.replace("domain: metal", "domain: plastics"))
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "invalid config" in daemon.log_text(), "invalid config refused")
        assert mdfctl("--config", str(config), "resume").returncode == 0
        assert daemon.wait_status(long, "completed")["points_done"] == 4
        assert daemon.get("/status")["mdf"]["domain"] == "metal"
    finally:
        daemon.stop()


def test_simulate_needs_simulators(tmp_path: Path) -> None:
    daemon = Daemon(write_config(tmp_path), "--simulate", env=environment())
    try:
        daemon.start(wait=False)
        assert daemon.wait_exit() == 2
        assert "--simulate needs a config that declares simulators" in daemon.log_text()
    finally:
        daemon.stop()


GUARDED_RECIPE = """\
recipe: {name: dwell-guard, version: "1"}
sweep:
  parameters:
    temperature: {unit: degC, values: [100, 110, 120, 130]}
steps:
  - set: {furnace.setpoint: temperature}
  - dwell: 1 h
  - acquire: {channels: [furnace.temperature], rate: 1, count: 2}
"""


def _furnace_fault(env: dict[str, str], exception_code: int) -> None:
    """Register 902 of the simulated furnace: every reply is this Modbus exception (0: off)."""
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient("127.0.0.1", port=int(env["MDFD_FURNACE_PORT"]), timeout=5)
    assert client.connect()
    try:
        assert not client.write_register(902, exception_code, device_id=1).isError()
    finally:
        client.close()


def test_unverifiable_interlock_is_shown_by_status_api_and_metrics(tmp_path: Path) -> None:
    """A furnace answering "device busy" leaves its interlock unread: an alarm everywhere."""
    config = tmp_path / "guarded.yaml"
    config.write_text(
        SIM_CONFIG.read_text()
        .replace(
            "vocabulary: vocabulary.yaml", f"vocabulary: {REPO / 'config' / 'vocabulary.yaml'}"
        )
        .replace("safety:\n", "safety:\n  unverifiable_after: 1 h\n", 1)
    )
    env = sim_env(tmp_path / "var", MDFD_TIME_SCALE="3000")
    daemon = _sim_daemon(tmp_path, env, "--simulate")
    daemon.config = config
    daemon.start()
    try:
        recipe = tmp_path / "guarded-recipe.yaml"
        recipe.write_text(GUARDED_RECIPE)
        run_id = submit(config, recipe, env=env)
        daemon.wait_points(run_id, 1)
        _furnace_fault(env, 6)  # SERVER_DEVICE_BUSY

        def alarmed() -> bool:
            current = daemon.get("/status")["current"]
            return bool(current and current["interlocks_unverified"])

        wait_until(alarmed, "the status to show the unverified interlock", daemon)
        status = daemon.get("/status")
        [alarm] = status["current"]["interlocks_unverified"]
        assert alarm["channel"] == "furnace.temperature"
        assert "INTERLOCK UNVERIFIED: furnace.temperature" in status["daemon"]["status"]
        shown = mdfctl("--socket", str(daemon.socket), "status", env=env)
        assert "interlock unverified: furnace.temperature" in shown.stdout, shown.stderr
        metrics = daemon.get("/metrics")
        assert 'mdfd_interlocks_unverified{mdf="sim-mdf-01"} 1.0' in metrics
        assert (
            'mdfd_interlock_unverified_seconds{mdf="sim-mdf-01",channel="furnace.temperature"}'
            in metrics
        )
        _furnace_fault(env, 0)
        wait_until(lambda: not alarmed(), "the interlock to be verified again", daemon)
        assert 'mdfd_interlocks_unverified{mdf="sim-mdf-01"} 0.0' in daemon.get("/metrics")
        log = daemon.log_text()
        assert "interlock unverifiable" in log
        assert "interlock verified again" in log
    finally:
        daemon.stop()


def test_sighup_during_start_up_is_applied_once_the_daemon_is_built(tmp_path: Path) -> None:
    """Issue 15: a SIGHUP while the daemon builds itself (here: while its simulators start)
    used to run the reload against a half-built daemon (an AttributeError, logged and retried).
    It must wait until the daemon is built, then reload; the daemon serves on."""
    env = sim_env(tmp_path / "var")
    daemon = _sim_daemon(tmp_path, env, "--simulate").start(wait=False)
    try:
        # Signal handlers are installed before this line is logged, and the daemon is built after.
        wait_until(lambda: "daemon starting" in daemon.log_text(), "start-up begun", daemon)
        sent = 0
        while sent == 0 or not daemon._serving():
            assert daemon.alive(), daemon.log_text()[-4000:]
            daemon.signal(signal.SIGHUP)
            sent += 1
            time.sleep(0.02)
        wait_until(lambda: "config reloaded" in daemon.log_text(), "the reload applied", daemon)
        assert daemon.get("/status")["mdf"]["id"] == "sim-mdf-01"
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0
        log = daemon.log_text()
        assert sent >= 1
        assert "AttributeError" not in log
        assert "background task failed" not in log
    finally:
        daemon.stop()
