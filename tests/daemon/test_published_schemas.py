"""Issue 15: the control API's answers and the event stream are what `mdfd schema api` and
`mdfd schema events` publish — checked on a real daemon's real responses, endpoint by endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from tests.support import mdfd

from .harness import Daemon, environment, mdfctl, submit, write_config, write_recipe


def _schema(kind: str) -> dict[str, Any]:
    done = mdfd("schema", kind)
    assert done.returncode == 0, done.stderr
    schema: dict[str, Any] = json.loads(done.stdout)
    Draft202012Validator.check_schema(schema)
    return schema


class Api:
    """Validates each answer against the schema its endpoint is published with."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.schema = _schema("api")
        self.checked: set[str] = set()

    def validate(self, route: str, body: Any) -> Any:
        endpoint = {**self.schema["x-endpoints"][route], "$defs": self.schema["$defs"]}
        errors = [e.message for e in Draft202012Validator(endpoint).iter_errors(body)]
        assert errors == [], (route, errors, body)
        self.checked.add(route)
        return body

    def call(
        self, method: str, path: str, route: str, expect: int, body: bytes | None = None
    ) -> Any:
        status, data = self.daemon.request(method, path, body)
        assert status == expect, (method, path, status, data)
        return self.validate("4xx, 5xx" if status >= 400 else route, data)


CAMPAIGN = """\
recipe: {name: campaign, version: "1"}
sweep:
  kind: adaptive
  parameters: {temperature: {unit: degC, low: 100, high: 400}}
  objectives: {level: {channel: furnace.setpoint, direction: maximize}}
  budget: {max_points: 500}
steps:
  - set: {furnace.setpoint: temperature}
  - dwell: 1 min
  - acquire: {channels: [furnace.setpoint], rate: 2, count: 2}
"""


def test_every_answer_and_event_matches_the_published_schema(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    daemon = Daemon(config, env=environment()).start()
    try:
        api = Api(daemon)
        assert api.call("GET", "/status", "GET /status", 200)["current"] is None

        # A whole run watched as NDJSON: the answer to the submit, then its events.
        recipe = write_recipe(tmp_path, temperatures="[200, 300]")
        watched = mdfctl("--config", str(config), "submit", str(recipe), "--json", "--watch")
        assert watched.returncode == 0, watched.stderr
        answer, *lines = [json.loads(line) for line in watched.stdout.splitlines()]
        first = api.validate("POST /runs", answer)["id"]
        events = Draft202012Validator(_schema("events"))
        for event in lines:
            assert [e.message for e in events.iter_errors(event)] == [], event
        kinds = [e["event"] for e in lines]
        assert {"run_start", "point_start", "point_end", "run_end"} <= set(kinds), kinds
        assert kinds[-1] == "run_end"

        # A run executing, paused, with another queued behind it.
        long = submit(config, write_recipe(tmp_path, name="long", temperatures="[1, 2, 3, 4]"))
        daemon.wait_status(long, "running")
        assert api.call("POST", f"/runs/{long}/pause", "POST /runs/{id}/pause", 200) == {
            "paused": long
        }
        status = api.call("GET", "/status", "GET /status", 200)
        assert status["current"]["id"] == long
        shown = api.call("GET", "/runs/current", "GET /runs/{id}", 200)
        assert (shown["id"], shown["progress"]["id"]) == (long, long)
        queued = submit(config, write_recipe(tmp_path, name="queued", temperatures="[5]"))
        assert [r["id"] for r in api.call("GET", "/queue", "GET /queue", 200)] == [queued]
        waiting = api.call("GET", "/status", "GET /status", 200)["queue"][0]
        order = json.dumps({"order": [queued]}).encode()
        assert api.call("POST", "/queue", "POST /queue", 200, order) == {"queue": [queued]}
        assert api.call("DELETE", f"/runs/{queued}", "DELETE /runs/{id}", 200) == {
            "dropped": queued
        }
        api.call("POST", f"/runs/{long}/resume", "POST /runs/{id}/resume", 200)
        api.call("POST", f"/runs/{long}/abort", "POST /runs/{id}/abort", 200)
        daemon.wait_status(long, "aborted")

        # An adaptive campaign, paused: its view, a person's point, an early stop.
        adaptive = tmp_path / "campaign.yaml"
        adaptive.write_text(CAMPAIGN)
        campaign = submit(config, adaptive)
        daemon.wait_status(campaign, "running")
        api.call("POST", f"/runs/{campaign}/pause", "POST /runs/{id}/pause", 200)
        api.call("GET", "/runs/current/campaign", "GET /runs/{id}/campaign", 200)
        point = json.dumps({"parameters": {"temperature": 250}}).encode()
        injected = api.call(
            "POST", "/runs/current/campaign/points", "POST /runs/{id}/campaign/points", 201, point
        )
        assert injected == {"run": campaign, "parameters": {"temperature": 250.0}}
        stopped = api.call(
            "POST", "/runs/current/campaign/stop", "POST /runs/{id}/campaign/stop", 200
        )
        assert stopped == {"stopped": campaign}
        api.call("POST", f"/runs/{campaign}/resume", "POST /runs/{id}/resume", 200)
        daemon.wait_status(campaign, "completed")
        outside = json.dumps({"parameters": {"temperature": 900}}).encode()
        api.call("POST", "/runs/current/campaign/points", "", 409, outside)  # none executes

        # One shape for a run everywhere: the listing's keys are the detail's and the queue's.
        runs = api.call("GET", "/runs", "GET /runs", 200)
        detail = api.call("GET", f"/runs/{first}?recipe=1", "GET /runs/{id}", 200)
        assert detail["recipe_text"] == recipe.read_text()
        assert detail["files"][0]["exists"] is True
        assert set(runs[0]) == set(waiting) == set(answer) - {"warnings"}
        assert set(runs[0]) <= set(detail)

        api.call("GET", "/outbox", "GET /outbox", 200)
        assert api.call("POST", "/outbox/retry", "POST /outbox/retry", 200)["requeued"] == 0

        # Refusals have their published shape too.
        api.call("GET", "/runs/nope", "", 404)
        api.call("POST", "/runs/current/pause", "", 409)
        bad = api.call("POST", "/runs", "", 422, b"recipe: {name: x}\n")
        assert bad["problems"], bad

        assert api.checked == set(api.schema["x-endpoints"])
    finally:
        daemon.stop()
