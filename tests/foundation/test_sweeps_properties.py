"""Properties of the sweep generators, over many shapes Hypothesis picks.

The engine, `mdfd plan` and `mdfd validate` all trust these functions to give the same points
in the same order every time; a resumed run finds point i by recomputing the list.
"""

from __future__ import annotations

import itertools
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdfd.recipes import sweeps
from mdfd.recipes.model import Sweep

settings.register_profile("foundation", max_examples=60, deadline=None)
settings.load_profile("foundation")

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@st.composite
def axes(draw: st.DrawFn, max_axes: int = 4, max_len: int = 5) -> dict[str, list[float]]:
    """Named axes of strictly increasing, distinct values (as a recipe's value lists are)."""
    keys = draw(st.lists(names, min_size=1, max_size=max_axes, unique=True))
    out = {}
    for key in keys:
        values = draw(st.lists(finite, min_size=1, max_size=max_len, unique=True))
        out[key] = sorted(values)
    return out


@given(axes())
def test_grid_has_the_product_of_axis_lengths_and_covers_every_combination(
    ax: dict[str, list[float]],
) -> None:
    points = list(sweeps.grid(ax))
    assert len(points) == math.prod(len(v) for v in ax.values())
    combos = {tuple(p[k] for k in ax) for p in points}
    assert len(combos) == len(points)
    for point in points:
        assert list(point) == list(ax)
        assert all(point[k] in ax[k] for k in ax)


@given(axes())
def test_grid_natural_order_has_the_first_parameter_outermost(ax: dict[str, list[float]]) -> None:
    points = list(sweeps.grid(ax))
    first = next(iter(ax))
    inner = len(points) // len(ax[first])
    for index, point in enumerate(points):
        assert point[first] == ax[first][index // inner]


@given(axes())
def test_serpentine_is_a_permutation_of_natural_order(ax: dict[str, list[float]]) -> None:
    natural = list(sweeps.grid(ax))
    snake = list(sweeps.grid(ax, serpentine=True))
    key = lambda p: tuple(p[k] for k in ax)  # noqa: E731
    assert sorted(map(key, snake)) == sorted(map(key, natural))
    assert snake[0] == natural[0]


@given(axes())
def test_serpentine_neighbours_differ_in_one_parameter_by_one_step(
    ax: dict[str, list[float]],
) -> None:
    snake = list(sweeps.grid(ax, serpentine=True))
    for before, after in itertools.pairwise(snake):
        changed = [k for k in ax if before[k] != after[k]]
        assert len(changed) == 1, (before, after)
        axis = ax[changed[0]]
        assert abs(axis.index(before[changed[0]]) - axis.index(after[changed[0]])) == 1


@given(st.integers(1, 50), st.data())
def test_zip_pairs_axes_of_equal_length_in_order(length: int, data: st.DataObject) -> None:
    keys = data.draw(st.lists(names, min_size=1, max_size=4, unique=True))
    ax = {k: data.draw(st.lists(finite, min_size=length, max_size=length)) for k in keys}
    points = list(sweeps.zipped(ax))
    assert len(points) == length
    for index, point in enumerate(points):
        assert point == {k: ax[k][index] for k in keys}


@given(st.lists(st.integers(1, 6), min_size=2, max_size=4).filter(lambda ls: len(set(ls)) > 1))
def test_zip_refuses_axes_of_unequal_length(lengths: list[int]) -> None:
    ax = {f"p{i}": [float(j) for j in range(n)] for i, n in enumerate(lengths)}
    with pytest.raises(ValueError, match="equal length"):
        list(sweeps.zipped(ax))


@given(finite, finite, st.integers(1, 200))
def test_linspace_count_and_end_points(start: float, stop: float, num: int) -> None:
    values = sweeps.linspace(start, stop, num)
    assert len(values) == num
    assert values[0] == start
    if num > 1:
        assert values[-1] == stop
    low, high = min(start, stop), max(start, stop)
    assert all(
        low - 1e-9 * max(1, abs(low)) <= v <= high + 1e-9 * max(1, abs(high)) for v in values
    )


@given(positive, positive, st.integers(2, 200))
def test_logspace_count_end_points_and_constant_ratio(start: float, stop: float, num: int) -> None:
    values = sweeps.logspace(start, stop, num)
    assert len(values) == num
    assert math.isclose(values[0], start, rel_tol=1e-9)
    assert math.isclose(values[-1], stop, rel_tol=1e-9)
    ratios = [b / a for a, b in itertools.pairwise(values)]
    assert all(math.isclose(r, ratios[0], rel_tol=1e-6) for r in ratios)


@given(
    st.integers(-1000, 1000),
    st.integers(0, 300),
    st.sampled_from([0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 50.0]),
    st.booleans(),
)
def test_range_counts_steps_and_includes_an_end_on_the_grid(
    start: int, steps: int, step: float, descending: bool
) -> None:
    signed = -step if descending else step
    stop = start + steps * signed
    values = sweeps.arange(start, stop, signed)
    assert len(values) == steps + 1, "the end point on the grid is included"
    assert values[0] == start
    assert math.isclose(values[-1], stop, rel_tol=1e-12, abs_tol=1e-9)
    assert all(math.isclose(b - a, signed, abs_tol=1e-9) for a, b in itertools.pairwise(values))


@given(st.integers(-100, 100), st.integers(1, 50), st.floats(0.05, 0.95))
def test_range_stops_before_an_end_off_the_grid(start: int, steps: int, fraction: float) -> None:
    values = sweeps.arange(start, start + steps + fraction, 1.0)
    assert len(values) == steps + 1
    assert values[-1] <= start + steps + fraction


@st.composite
def lhs_bounds(draw: st.DrawFn) -> dict[str, tuple[float, float]]:
    keys = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    out = {}
    for key in keys:
        low = draw(st.floats(-1e4, 1e4))
        width = draw(st.floats(1e-3, 1e4))
        out[key] = (low, low + width)
    return out


@given(lhs_bounds(), st.integers(1, 60), st.integers(0, 2**63 - 1))
def test_latin_hypercube_has_one_sample_per_stratum_of_every_parameter(
    bounds: dict[str, tuple[float, float]], samples: int, seed: int
) -> None:
    points = sweeps.latin_hypercube(bounds, samples, seed)
    assert len(points) == samples
    for name, (low, high) in bounds.items():
        values = np.array([p[name] for p in points])
        assert np.all(values >= low)
        assert np.all(values <= high)
        strata = np.minimum(np.floor((values - low) / (high - low) * samples), samples - 1)
        assert sorted(strata.astype(int).tolist()) == list(range(samples))


@given(lhs_bounds(), st.integers(2, 40), st.integers(0, 2**32))
def test_latin_hypercube_is_determined_by_its_seed(
    bounds: dict[str, tuple[float, float]], samples: int, seed: int
) -> None:
    assert sweeps.latin_hypercube(bounds, samples, seed) == sweeps.latin_hypercube(
        bounds, samples, seed
    )
    assert sweeps.latin_hypercube(bounds, samples, seed) != sweeps.latin_hypercube(
        bounds, samples, seed + 1
    )


@given(axes(max_axes=3, max_len=4), st.sampled_from(["natural", "serpentine"]))
def test_a_grid_sweep_model_generates_what_the_generator_does(
    ax: dict[str, list[float]], order: str
) -> None:
    sweep = Sweep.model_validate(
        {"mode": "grid", "order": order, "parameters": {k: {"values": v} for k, v in ax.items()}}
    )
    points = sweep.generate()
    assert sweep.count() == len(points)
    assert points == list(sweeps.grid(ax, serpentine=order == "serpentine"))
    assert points == sweep.generate(), "a sweep gives the same points every time"


@given(
    st.integers(-500, 500),
    st.integers(0, 40),
    st.sampled_from([0.5, 1.0, 25.0]),
    st.integers(1, 30),
    positive,
    st.integers(1, 10),
)
def test_a_sweep_models_count_matches_its_generated_points(
    start: int, steps: int, step: float, num: int, log_start: float, log_num: int
) -> None:
    sweep = Sweep.model_validate(
        {
            "parameters": {
                "a": {"range": {"start": start, "stop": start + steps * step, "step": step}},
                "b": {"linspace": {"start": 0, "stop": 1, "num": num}},
                "c": {"logspace": {"start": log_start, "stop": log_start * 10, "num": log_num}},
            }
        }
    )
    points = sweep.generate()
    assert len(points) == sweep.count() == (steps + 1) * num * log_num


@pytest.mark.parametrize("order", ["natural", "serpentine"])
def test_a_sweep_makes_its_points_as_a_run_reaches_them(order: str) -> None:
    """The engine held a sweep's every point (a dict each) for the whole run: a 20,000-point
    run peaked 3.5 MB higher than a 2,000-point one. A million points now cost their axes."""
    sweep = Sweep.model_validate(
        {
            "order": order,
            "parameters": {
                "a": {"linspace": {"start": 0, "stop": 1, "num": 1000}},
                "b": {"linspace": {"start": 0, "stop": 1, "num": 1000}},
            },
        }
    )
    tracemalloc.start()
    try:
        points = sweep.each()
        first, second = next(points), next(points)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (first, second) == ({"a": 0.0, "b": 0.0}, {"a": 0.0, "b": 1 / 999})
    assert sweep.count() == 1_000_000
    assert peak < 1_000_000  # the list of a million points is ~200 MB
