"""What "best" means: only feasible measured trials count; several objectives give a front."""

from __future__ import annotations

import math

from mdfd.daemons.engine.front import best_so_far, front
from mdfd.daemons.engine.proposer import Trial, visible_history


def done(number: int, *values: float, violation: float = 0.0) -> Trial:
    return Trial(number, {"x": float(number)}, "done", values, {"c": violation})


def test_best_so_far_skips_infeasible_and_unmeasured() -> None:
    trials = [
        Trial(0, {"x": 0.0}, "failed"),
        done(1, 5.0),
        done(2, 9.0, violation=0.5),  # better, but breaks a constraint
        Trial(3, {"x": 3.0}, "rejected", (), {"c": 2.0}),
        done(4, 7.0),
        done(5, 6.0),
    ]
    line = best_so_far(trials, ["maximize"])
    assert math.isnan(line[0])
    assert line[1:] == [5.0, 5.0, 5.0, 7.0, 7.0]
    assert [t.number for t in front(trials, ["maximize"])] == [4]
    assert best_so_far(trials, ["minimize"])[1:] == [5.0, 5.0, 5.0, 5.0, 5.0]


def test_front_of_two_objectives_keeps_every_trade_off_once() -> None:
    trials = [
        done(0, 10.0, 90.0),
        done(1, 50.0, 70.0),
        done(2, 40.0, 60.0),  # dominated by 1
        done(3, 90.0, 40.0),
        done(4, 50.0, 70.0),  # a repeat of 1: shown once
        done(5, 95.0, 95.0, violation=1.0),  # would dominate all, infeasible
    ]
    assert [t.number for t in front(trials, ["maximize", "maximize"])] == [0, 1, 3]
    assert [t.number for t in front(trials, ["maximize", "minimize"])] == [3]


def test_a_proposal_sees_results_only_up_to_its_batch_horizon() -> None:
    history = [done(0, 1.0), done(1, 2.0), done(2, 3.0), Trial(3, {"x": 3.0}, "pending")]
    shown = visible_history(history, 4, batch_size=2)
    assert [(t.number, t.state) for t in shown] == [
        (0, "done"),
        (1, "done"),
        (2, "done"),
        (3, "pending"),
    ]
    shown = visible_history(history, 3, batch_size=2)
    assert [(t.number, t.state) for t in shown] == [(0, "done"), (1, "done"), (2, "pending")]
