"""Issue 15: events are typed, one dataclass per kind; what goes on the wire reads back as the
same event, matches the published schema, and a kind or field this version does not know is
passed over, not a crash."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from mdfd.daemons.cli.watch import _Display
from mdfd.daemons.core import strictjson
from mdfd.daemons.engine import events as ev

EVERY_KIND = [
    ev.Subscribed(),
    ev.Heartbeat(state="idle"),
    ev.Queued(run="r1", recipe="anneal"),
    ev.Dropped(run="r1"),
    ev.QueueOrder(order=["r2", "r1"]),
    ev.RunStarted(run="r1", recipe="anneal", points_total=3, points_done=1),
    ev.RunState(run="r1", state="paused"),
    ev.PointStarted(run="r1", point=1, parameters={"T": 200.0}, points_total=3, points_done=1),
    ev.PointEnded(
        run="r1",
        point=1,
        status="completed",
        parameters={"T": 200.0},
        points_total=3,
        points_done=2,
        elapsed=10.0,
        remaining=5.0,
        remaining_wall=0.5,
    ),
    ev.Readings(point=1, values={"meter.r": 1.5, "meter.bad": None}),
    ev.RunEnded(run_id="r1", status="failed", message="interlock"),
    ev.Alarm(run="r1", message="interlock"),
    ev.InterlocksUnverified(
        run="r1",
        unverified=[ev.UnverifiedInterlock(channel="furnace.t", seconds=4.0, error="busy")],
    ),
    ev.InstrumentChanged(
        name="furnace", driver="modbus", state="ok", identity="x", error="", since=1.0, errors=0
    ),
]


def test_there_is_one_example_per_kind() -> None:
    assert {type(e) for e in EVERY_KIND} == set(ev.Event.__args__)


@pytest.mark.parametrize("event", EVERY_KIND, ids=lambda e: e.event)
def test_the_wire_reads_back_as_the_same_event_and_matches_the_schema(event: ev.Event) -> None:
    line = strictjson.dumps(ev.to_wire(event))
    assert ev.from_wire(json.loads(line)) == event
    schema = Draft202012Validator(ev.json_schema())
    assert [e.message for e in schema.iter_errors(json.loads(line))] == []


def test_run_end_names_its_run_like_every_other_event() -> None:
    wire = ev.to_wire(ev.RunEnded(run_id="r7", status="completed"))
    assert (wire["event"], wire["run_id"], wire["run"]) == ("run_end", "r7", "r7")


def test_a_non_finite_reading_is_null_on_the_wire() -> None:
    line = strictjson.dumps(ev.to_wire(ev.Readings(point=0, values={"a": float("nan")})))
    assert json.loads(line)["values"] == {"a": None}


def test_unknown_kinds_and_fields_are_passed_over(capsys: pytest.CaptureFixture[str]) -> None:
    assert ev.from_wire({"event": "calibration", "run": "r1"}) is None
    assert ev.from_wire({"event": "run_state", "run": "r1", "state": "x", "new": 1}) == (
        ev.RunState(run="r1", state="x")
    )
    shown = _Display({"id": "r1", "points_total": 2, "points_done": 0}, as_json=False)
    shown.event({"event": "calibration", "run": "r1"})
    assert capsys.readouterr().out == ""
    relayed = _Display({"id": "r1", "points_total": 2, "points_done": 0}, as_json=True)
    relayed.event({"event": "calibration", "run": "r1"})
    assert json.loads(capsys.readouterr().out) == {"event": "calibration", "run": "r1"}
