"""Each fragment and button of the operator page against a real `mdfd serve`: what it shows
comes from the daemon, and what it does is what the control API does."""

from __future__ import annotations

import html
import http.client
import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.harness import WAIT, Daemon, submit, wait_until, write_recipe
from tests.support import edit_config

from .webharness import Browser, start, web_config

BAD = """\
recipe: {name: bad, version: "1"}
sweep:
  parameters:
    temperature: {unit: degC, values: [200, 300]}
steps:
  - ramp: {channel: furnace.setpoint, to: temperature, rate: 50 degC/min}
  - dwell: 5 parsecs
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Daemon, Browser]]:
    daemon, url = start(web_config(tmp_path))
    browser = Browser(url)
    browser.get_page()
    yield daemon, browser
    daemon.stop()


def test_a_bad_recipe_shows_located_problems_next_to_its_lines(
    served: tuple[Daemon, Browser], tmp_path: Path
) -> None:
    daemon, browser = served
    status, _, text = browser.request("POST", "/act/check", {"recipe": BAD, "name": "bad.yaml"})
    assert status == 422
    bad_lines = re.findall(
        r'<li class="bad"><code>(.*?)</code><div class="problem">(.*?)</div>', text
    )
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    validate = subprocess.run(
        [sys.executable, "-m", "mdfd.daemons.cli.mdfd", "validate", "--config", str(daemon.config),
         str(path)],
        capture_output=True, text=True, timeout=WAIT, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert validate.returncode == 2
    # The same located message `mdfd validate` prints, under the name the page was given.
    printed = validate.stderr.strip().replace(str(path), "bad.yaml")
    assert [(html.unescape(a), html.unescape(b)) for a, b in bad_lines] == [
        ("  - dwell: 5 parsecs", printed)
    ]
    assert daemon.get("/queue") == []
    status, _, text = browser.request("POST", "/act/submit", {"recipe": BAD, "name": "bad.yaml"})
    assert status == 422
    assert daemon.get("/queue") == []


def test_check_plans_then_submit_queues_and_history_serves_the_files(
    served: tuple[Daemon, Browser], tmp_path: Path
) -> None:
    daemon, browser = served
    text = write_recipe(tmp_path).read_text()
    status, _, preview = browser.request("POST", "/act/check", {"recipe": text, "name": "r.yaml"})
    assert status == 200, preview
    assert '<b id="plan-points">3 points</b>' in preview
    assert "estimated" in preview
    assert daemon.get("/queue") == []
    status, headers, answer = browser.request("POST", "/act/submit", {"recipe": text})
    assert status == 200, answer
    assert headers["hx-trigger"] == "refresh"
    run_id = re.search(r"queued run (\S+) \(3 points\)", answer).group(1)  # type: ignore[union-attr]
    daemon.wait_status(run_id, "completed")
    history = browser.get("/fragment/history")
    row = re.search(rf'<tr data-run="{run_id}">.*?</tr>', history, re.DOTALL).group(0)  # type: ignore[union-attr]
    assert "completed" in row
    assert "3 / 3" in row
    for kind in ("hdf5", "csv", "plot.png"):
        assert f'href="/files/{run_id}/{kind}"' in row
    csv = [line for line in browser.get(f"/files/{run_id}/csv").splitlines() if line[:1] != "#"]
    assert len(csv) == 4  # the header and one row per point
    assert "temperature" in csv[0]
    status, headers, _ = browser.request("GET", f"/files/{run_id}/plot.png")
    assert (status, headers["content-type"]) == (200, "image/png")
    raw = _raw(browser, f"/files/{run_id}/hdf5")
    assert raw.startswith(b"\x89HDF\r\n\x1a\n")


def _raw(browser: Browser, path: str) -> bytes:
    connection = http.client.HTTPConnection(browser.host, browser.port, timeout=WAIT)
    try:
        connection.request("GET", path)
        return connection.getresponse().read()
    finally:
        connection.close()


def test_queue_reorder_drop_pause_resume_go_through_the_api(
    served: tuple[Daemon, Browser], tmp_path: Path
) -> None:
    daemon, browser = served
    recipe = write_recipe(tmp_path, dwell="100 h")
    first = submit(daemon.config, recipe)
    daemon.wait_status(first, "running")
    second, third = submit(daemon.config, recipe), submit(daemon.config, recipe)
    queue = browser.get("/fragment/queue")
    assert queue.index(second) < queue.index(third)
    assert browser.request("POST", f"/act/move/{third}", {"by": "-1"})[0] == 200
    assert [r["id"] for r in daemon.get("/queue")] == [third, second]
    assert browser.request("POST", f"/act/drop/{second}")[0] == 200
    assert [r["id"] for r in daemon.get("/queue")] == [third]
    status, _, text = browser.request("POST", f"/act/drop/{second}")
    assert status in (404, 409)
    assert 'class="error"' in text
    assert browser.request("POST", "/act/pause")[0] == 200
    daemon.wait_status(first, "paused")
    assert "Resume" in browser.get("/fragment/current")
    assert browser.request("POST", "/act/resume")[0] == 200
    daemon.wait_status(first, "running")
    assert browser.request("POST", "/act/abort")[0] == 200
    daemon.wait_status(first, "aborted", "failed")


def test_live_views_and_the_event_stream(served: tuple[Daemon, Browser], tmp_path: Path) -> None:
    daemon, browser = served
    many = str(list(range(200, 1200, 25)))  # 40 points of about half a wall second
    run_id = submit(daemon.config, write_recipe(tmp_path, temperatures=many))
    daemon.wait_status(run_id, "running")
    connection = http.client.HTTPConnection(browser.host, browser.port, timeout=WAIT)
    try:
        connection.request("GET", "/events")
        response = connection.getresponse()
        assert response.getheader("Content-Type") == "text/event-stream"
        seen: dict[str, dict[str, object]] = {}
        name = ""
        while "readings" not in seen:
            line = response.readline().decode().strip()
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                seen[name] = json.loads(line.removeprefix("data: "))
    finally:
        connection.close()
    assert seen["hello"]["csrf"] == browser.csrf
    assert "furnace.temperature" in seen["readings"]["values"]  # type: ignore[operator]

    def valued() -> bool:
        return "temperature = " in browser.get("/fragment/instruments")

    wait_until(valued, "the instruments view to show a reading", daemon)
    instruments = browser.get("/fragment/instruments")
    assert re.search(r"temperature = [0-9.]+ degC", instruments)
    assert "above 1450 degC" in instruments  # the interlock and its limit
    current = browser.get("/fragment/current")
    assert run_id in current
    assert re.search(r'<b id="point">[0-9]+ of 40</b>', current)
    assert "temperature" in current
    outbox = browser.get("/fragment/outbox")
    assert 'data-publisher="spool"' in outbox
    browser.request("POST", "/act/abort")
    daemon.wait_status(run_id, "aborted", "failed")


def test_idle_instruments_show_their_probed_value_and_its_age(
    served: tuple[Daemon, Browser],
) -> None:
    """With no run the values column was empty ("—"): the health probe's reading now shows."""
    daemon, browser = served

    def probed() -> bool:
        return "temperature = " in browser.get("/fragment/instruments")

    wait_until(probed, "the idle furnace's probed temperature on the page", daemon)
    instruments = browser.get("/fragment/instruments")
    furnace = re.search(r'<tr data-instrument="furnace">(.*?)</tr>', instruments, re.DOTALL)
    assert furnace is not None, instruments
    assert re.search(r"<div>temperature = 25 degC</div>", furnace.group(1)), furnace.group(1)
    assert re.search(r"<td>[^<]+ ago</td>", furnace.group(1)), furnace.group(1)
    meter = re.search(r'<tr data-instrument="meter">(.*?)</tr>', instruments, re.DOTALL)
    assert meter is not None
    assert "resistivity = 1.8 " in meter.group(1)


def test_a_failed_call_is_an_error_in_place(served: tuple[Daemon, Browser]) -> None:
    _, browser = served
    status, _, text = browser.request("GET", "/files/no-such-run/csv")
    assert status == 404
    assert text.startswith('<div class="error" role="alert">')
    assert "no-such-run" in text
    status, _, text = browser.request("POST", "/act/resume")
    assert status == 409
    assert text.startswith('<div class="error" role="alert">refused:')
    assert browser.request("GET", "/fragment/nothing")[0] == 404
    huge = "# " + "x" * (2 * 1024 * 1024)  # over control.max_request_bytes (1 MiB)
    status, _, text = browser.request("POST", "/act/check", {"recipe": huge})
    assert status == 413
    assert text  # a message to show in place, never an empty answer


def test_a_tripped_interlock_shows_with_its_limit_and_when(tmp_path: Path) -> None:
    safety = {
        "interlocks": [{"channel": "furnace.temperature", "above": 150, "message": "too hot"}],
        "safe_state": {"furnace.setpoint": 25},
    }
    config = edit_config(web_config(tmp_path), lambda model: model.update(safety=safety))
    daemon, url = start(config)
    try:
        browser = Browser(url)
        run_id = submit(config, write_recipe(tmp_path, temperatures="[400]", dwell="100 h"))
        daemon.wait_status(run_id, "failed")
        instruments = browser.get("/fragment/instruments")
        assert "above 150 degC" in instruments
        tripped = re.search(
            r'<tr class="tripped"><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td>', instruments
        )
        assert tripped is not None, instruments
        assert tripped.group(2) == run_id
        assert "too hot" in html.unescape(tripped.group(3))
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", tripped.group(1))
        daemon.stop()
        # The list began empty after a restart: an operator arriving later saw no alarm.
        daemon, url = start(config, log=tmp_path / "serve-again.log")
        again = Browser(url).get("/fragment/instruments")
        rows = re.findall(
            r'<tr class="tripped"><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td>', again
        )
        assert [run for _, run, _ in rows] == [run_id]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", rows[0][0])
        assert "too hot" in html.unescape(rows[0][2])
    finally:
        daemon.stop()


CAMPAIGN = """\
recipe: {name: web-campaign, version: "1"}
sweep:
  kind: adaptive
  parameters:
    temperature: {unit: degC, low: 100, high: 500, step: 10}
  objectives:
    level: {channel: furnace.setpoint, reduce: mean, direction: maximize}
  constraints:
    - {channel: furnace.setpoint, reduce: max, below: 300}
  budget: {max_points: 40}
  initial_design: {kind: latin_hypercube, samples: 3}
  seed: 5
steps:
  - set: {furnace.setpoint: temperature}
  - dwell: 1 min
  - acquire: {channels: [furnace.setpoint], rate: 2, count: 3}
"""


def test_an_adaptive_run_shows_each_trial_with_the_best_so_far(
    served: tuple[Daemon, Browser], tmp_path: Path
) -> None:
    daemon, browser = served
    recipe = tmp_path / "campaign.yaml"
    recipe.write_text(CAMPAIGN)
    run_id = submit(daemon.config, recipe)
    daemon.wait_points(run_id, 4)
    current = browser.get("/fragment/current")
    assert re.search(r"[0-9]+ of 40 points measured", current), current
    rows = re.findall(
        r'<tr( class="muted"[^>]*)?><td class="num">([0-9]+)</td><td class="num">([^<]*)</td>'
        r'<td class="num">([^<]*)</td></tr>',
        current,
    )
    assert len(rows) >= 4, current
    # the objective is the setpoint's mean, the trial's temperature; above 300 the point is
    # infeasible: shown apart, and never the best (the line `mdfd plot` draws)
    best_so_far = math.nan
    for muted, _, level, best in rows:
        assert bool(muted) == (float(level) > 300), (level, muted)
        if float(level) <= 300:
            best_so_far = (
                max(float(level), best_so_far) if best_so_far == best_so_far else float(level)
            )
        assert best == ("—" if math.isnan(best_so_far) else f"{best_so_far:.6g}"), (rows, best)
    # the seeded Latin hypercube over 100..500 puts points on both sides of the bound
    assert any(muted for muted, *_ in rows)
    assert not all(muted for muted, *_ in rows)
    browser.request("POST", "/act/abort")
    daemon.wait_status(run_id, "aborted", "failed", "completed")
