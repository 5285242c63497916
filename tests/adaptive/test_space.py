"""Every point a campaign's initial design makes is inside the space a person's point is
checked against: within bounds, on the step, one of the choices."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from mdfd.daemons.engine.campaignview import point_problems
from mdfd.recipes.adaptive import AdaptiveSweep

bounds = st.tuples(
    st.floats(-1e4, 1e4, allow_nan=False), st.floats(1e-3, 1e4, allow_nan=False)
).map(lambda pair: (pair[0], pair[0] + pair[1]))


@settings(max_examples=60, deadline=None)
@given(
    low_high=bounds,
    step_fraction=st.one_of(st.none(), st.floats(0.01, 1.0)),
    int_low=st.integers(-50, 50),
    int_span=st.integers(1, 40),
    choices=st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=5),
    samples=st.integers(1, 30),
    seed=st.integers(0, 2**31 - 1),
    kind=st.sampled_from(["latin_hypercube", "random"]),
)
# Far from zero a step is a few of the value's last bits: the check once refused this point.
@example(
    low_high=(256.0, 256.001),
    step_fraction=0.015625,
    int_low=0,
    int_span=1,
    choices=[0.0],
    samples=1,
    seed=0,
    kind="latin_hypercube",
)
def test_initial_points_fit_the_space(
    low_high: tuple[float, float],
    step_fraction: float | None,
    int_low: int,
    int_span: int,
    choices: list[float],
    samples: int,
    seed: int,
    kind: str,
) -> None:
    low, high = low_high
    step = None if step_fraction is None else (high - low) * step_fraction
    sweep = AdaptiveSweep.model_validate(
        {
            "kind": "adaptive",
            "parameters": {
                "x": {"low": low, "high": high, "step": step},
                "n": {"type": "int", "low": int_low, "high": int_low + int_span},
                "c": {"type": "categorical", "choices": choices},
            },
            "objectives": {"y": {"channel": "meter.y", "direction": "maximize"}},
            "budget": {"max_points": samples},
            "initial_design": {"kind": kind, "samples": samples},
            "seed": seed,
        }
    )
    points = sweep.initial_points()
    assert len(points) == samples
    assert points == sweep.initial_points(), "the design is a function of the seed"
    for point in points:
        assert point_problems(sweep, point) == [], point
