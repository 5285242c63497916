"""The operator's journeys in a real browser (Debian chromium via Playwright) against real
`mdfd serve` processes: the simulated demo, a login with two roles, a daemon restart."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.harness import Daemon, environment, submit, write_recipe
from tests.support import (
    REPO,
    Child,
    free_port,
    retry_port_race,
    sim_env,
    start_mdfd,
    start_simulators,
    stop_process,
)

from .browser import browser_context, shot
from .test_views import BAD
from .webharness import LOGIN, OPERATOR, TOKENS, VIEWER, start, web_config

pytestmark = pytest.mark.slow
WAIT_MS = 60_000  # an upper bound for anything to appear, never a threshold


@pytest.fixture
def chromium() -> Iterator[Any]:
    yield from browser_context()


def _demo(tmp_path: Path) -> tuple[Child, str]:
    def attempt() -> tuple[Child, str]:
        env = sim_env(tmp_path / "var", MDFD_TIME_SCALE="3000")
        child = start_mdfd(
            "serve", "--config", str(REPO / "config" / "sim.yaml"), "--simulate",
            logs=tmp_path, env=env,
        )  # fmt: skip
        try:
            line = child.wait_for_line("operator page: ", stream="stdout")
        except BaseException:
            stop_process(child)
            raise
        return child, line.split(": ", 1)[1].strip()

    return retry_port_race(attempt)


def _plotted(page: Any, channel: str) -> int:
    cell = page.locator(f'.plot[data-channel="{channel}"]')
    return int(cell.get_attribute("data-points") or 0)


def test_demo_journey_bad_recipe_good_recipe_live_plot_pause_abort(
    chromium: Any, tmp_path: Path
) -> None:
    daemon, url = _demo(tmp_path)
    try:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        page.locator("header").get_by_text("sim-mdf-01").wait_for(timeout=WAIT_MS)
        assert page.locator("header").get_by_text("simulated instruments").is_visible()

        page.locator("nav").get_by_role("link", name="Queue").click()
        page.locator("textarea[name=recipe]").fill(BAD)
        page.get_by_role("button", name="Check").click()
        problem = page.locator("li.bad .problem").first
        problem.wait_for(timeout=WAIT_MS)
        assert re.match(r"pasted\.yaml:7: steps\[1\]\.dwell: cannot convert", problem.inner_text())
        assert page.locator("li.bad code").inner_text() == "  - dwell: 5 parsecs"
        shot(page, "queue-bad-recipe")

        # The good recipe is uploaded as a file (an upload wins over the pasted text).
        recipe = REPO / "recipes" / "examples" / "metal-annealing.yaml"
        page.locator("#submit input[name=file]").set_input_files(str(recipe))
        page.wait_for_function(
            "() => document.querySelector('#submit textarea').value.includes('copper')",
            timeout=WAIT_MS,
        )
        page.get_by_role("button", name="Check").click()
        page.locator("#plan-points").wait_for(timeout=WAIT_MS)
        assert page.locator("#plan-points").inner_text() == "10 points"
        shot(page, "queue-plan")
        page.get_by_role("button", name="Queue it").click()
        page.locator("#flash .ok").get_by_text("queued run").wait_for(timeout=WAIT_MS)

        page.locator("nav").get_by_role("link", name="Current").click()
        plot = page.locator('.plot[data-channel="furnace.temperature"]')
        plot.wait_for(timeout=WAIT_MS)
        first = _plotted(page, "furnace.temperature")
        page.wait_for_function(
            "n => Number(document.querySelector('.plot[data-channel=\"furnace.temperature\"]')"
            ".dataset.points) > n",
            arg=first,
            timeout=WAIT_MS,
        )
        assert "degC" in plot.inner_text()  # the axis carries the unit
        shot(page, "current-run")

        page.get_by_role("button", name="Pause after this point").click()
        page.get_by_role("button", name="Resume").first.wait_for(timeout=WAIT_MS)
        page.locator("header").get_by_text("paused").wait_for(timeout=WAIT_MS)
        page.get_by_role("button", name="Resume").first.click()
        page.locator("header").get_by_text("running").first.wait_for(timeout=WAIT_MS)

        for view in ("Instruments", "Outbox"):
            page.locator("nav").get_by_role("link", name=view).click()
            page.locator(f"#{view.lower()} table").first.wait_for(timeout=WAIT_MS)
            shot(page, view.lower())

        dialogs: list[str] = []

        def confirm(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.accept()

        page.on("dialog", confirm)
        page.locator("#abort").click()
        page.locator("#flash .ok").get_by_text("aborting").wait_for(timeout=WAIT_MS)
        assert dialogs[0].startswith("Abort run ")
        page.locator("nav").get_by_role("link", name="History").click()
        page.locator("#history").get_by_text("aborted").first.wait_for(timeout=WAIT_MS)
        assert page.locator("#history a", has_text="CSV").count() >= 1
        shot(page, "history")
        assert errors == []
    finally:
        stop_process(daemon)


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[Daemon, str]]:
    daemon, url = start(web_config(tmp_path, **LOGIN), **TOKENS)
    yield daemon, url
    daemon.stop()


def test_login_and_the_read_only_role(
    chromium: Any, guarded: tuple[Daemon, str], tmp_path: Path
) -> None:
    daemon, url = guarded
    run_id = submit(daemon.config, write_recipe(tmp_path, dwell="100 h"))
    daemon.wait_status(run_id, "running")
    page = chromium.new_page()
    page.goto(url)
    assert page.url.endswith("/login")
    page.locator("input[name=token]").fill("not the token")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == "wrong token"
    shot(page, "login")
    page.locator("input[name=token]").fill(VIEWER)
    page.get_by_role("button", name="Log in").click()
    page.locator("header").get_by_text(run_id).wait_for(timeout=WAIT_MS)
    assert page.locator("#abort").count() == 0
    assert page.get_by_role("button", name="Pause after this point").count() == 0
    # The button is not there; a request forged from the page is refused all the same.
    status = page.evaluate(
        """async () => (await fetch('/act/abort', {method: 'POST', headers: {'X-CSRF-Token':
        JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']}})).status"""
    )
    assert status == 403
    assert daemon.run(run_id)["status"] == "running"

    operator = chromium.new_page()
    operator.goto(url)
    operator.locator("input[name=token]").fill(OPERATOR)
    operator.get_by_role("button", name="Log in").click()
    operator.on("dialog", lambda dialog: dialog.accept())
    operator.locator("#abort").click()
    operator.locator("#flash .ok").get_by_text("aborting").wait_for(timeout=WAIT_MS)
    daemon.wait_status(run_id, "aborted", "failed")


def test_live_updates_reconnect_after_a_daemon_restart(chromium: Any, tmp_path: Path) -> None:
    port = free_port()
    config = web_config(tmp_path, port=port)
    daemon = Daemon(config, env=environment()).start()
    try:
        page = chromium.new_page()
        page.goto(f"http://127.0.0.1:{port}/?view=queue")
        page.locator("header").get_by_text("mem-mdf").wait_for(timeout=WAIT_MS)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0
        page.locator("#link").wait_for(state="visible", timeout=WAIT_MS)
        shot(page, "daemon-down")
        assert page.locator("header").get_by_text("mem-mdf").is_visible()  # never blank
        daemon.start()
        page.locator("#link").wait_for(state="hidden", timeout=WAIT_MS)
        # The restarted daemon's events reach the page: a run queued now appears by itself,
        # and a button works with the CSRF token the new stream handed over.
        run_id = submit(config, write_recipe(tmp_path, dwell="100 h"))
        page.locator("header").get_by_text(run_id).wait_for(timeout=WAIT_MS)
        page.on("dialog", lambda dialog: dialog.accept())
        page.locator("#abort").click()
        page.locator("#flash .ok").get_by_text("aborting").wait_for(timeout=WAIT_MS)
        daemon.wait_status(run_id, "aborted", "failed")
    finally:
        daemon.stop()


def test_an_instrument_goes_unavailable_and_comes_back(chromium: Any, tmp_path: Path) -> None:
    """The simulators in their own process (`mdfd sim`): stopping it takes the instruments
    away under the daemon; the page shows them unavailable, with the error, then back."""
    config = REPO / "config" / "sim.yaml"
    env = sim_env(tmp_path / "var", MDFD_TIME_SCALE="3000")
    simulators, _ = start_simulators(config, logs=tmp_path / "sim", env=env)
    daemon = start_mdfd("serve", "--config", str(config), logs=tmp_path, env=env)
    try:
        url = daemon.wait_for_line("operator page: ", stream="stdout").split(": ", 1)[1]
        page = chromium.new_page(viewport={"width": 1280, "height": 700})
        page.goto(f"{url.strip()}?view=instruments")
        furnace = page.locator('tr[data-instrument="furnace"] td.state')
        page.locator('tr[data-instrument="furnace"] td.state-ok').wait_for(timeout=WAIT_MS)
        stop_process(simulators)
        page.locator('tr[data-instrument="furnace"] td.state-unavailable').wait_for(timeout=WAIT_MS)
        assert furnace.inner_text() == "unavailable"
        assert page.locator('tr[data-instrument="furnace"] td.err').inner_text() != ""
        shot(page, "instrument-unavailable")
        simulators, _ = start_simulators(config, logs=tmp_path / "sim2", env=env)
        page.locator('tr[data-instrument="furnace"] td.state-ok').wait_for(timeout=WAIT_MS)
    finally:
        stop_process(daemon)
        stop_process(simulators)
