"""Sweep generators: from a declarative sweep to its points in order.

Pure functions of the recipe (and its seed), so `mdfd plan`, `mdfd validate` and the engine see
the same points in the same order, and a resumed run finds point i where it left it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import product

import numpy as np

Point = dict[str, float]


def linspace(start: float, stop: float, num: int) -> list[float]:
    return [float(v) for v in np.linspace(start, stop, num)]


def logspace(start: float, stop: float, num: int) -> list[float]:
    """Geometric spacing between the actual values `start` and `stop` (both > 0)."""
    return [float(v) for v in np.geomspace(start, stop, num)]


def arange(start: float, stop: float, step: float) -> list[float]:
    """Inclusive of `stop` when it falls on the grid (within float tolerance): lab ranges are."""
    return [float(start + i * step) for i in range(arange_count(start, stop, step))]


def arange_count(start: float, stop: float, step: float) -> int:
    return max(int(np.floor((stop - start) / step + 1e-9)) + 1, 0)


def grid(axes: Mapping[str, Sequence[float]], serpentine: bool = False) -> Iterator[Point]:
    """Cartesian product, first parameter outermost, one point at a time: the engine runs a
    sweep of a hundred thousand points without holding them (a point is a dict, ~200 bytes).

    Serpentine order reverses every other pass of each inner axis so consecutive points differ
    in one parameter by one step — a furnace never jumps from the top of a range back to the
    bottom between neighbouring points.
    """
    names = list(axes)
    if not names:
        return
    combos = _snake([list(v) for v in axes.values()]) if serpentine else product(*axes.values())
    for combo in combos:
        yield dict(zip(names, combo, strict=True))


def _snake(axes: list[list[float]]) -> Iterator[tuple[float, ...]]:
    if len(axes) == 1:
        yield from ((v,) for v in axes[0])
        return
    inner = list(_snake(axes[1:]))  # one pass of the inner axes, walked both ways
    for index, value in enumerate(axes[0]):
        for rest in inner if index % 2 == 0 else reversed(inner):
            yield (value, *rest)


def zipped(axes: Mapping[str, Sequence[float]]) -> Iterator[Point]:
    """The axes' values paired in order, one point at a time (the error on unequal lengths
    comes with the first point)."""
    lengths = {len(v) for v in axes.values()}
    if len(lengths) > 1:
        raise ValueError(f"zip needs axes of equal length, got {sorted(lengths)}")
    names = list(axes)
    for combo in zip(*axes.values(), strict=True):
        yield dict(zip(names, combo, strict=True))


def latin_hypercube(
    bounds: Mapping[str, tuple[float, float]], samples: int, seed: int
) -> list[Point]:
    """One sample in each of `samples` equal strata of every parameter, strata paired at random.

    Seeded with numpy's PCG64 so the same recipe gives the same points on any machine.
    """
    rng = np.random.default_rng(seed)
    out: list[Point] = [{} for _ in range(samples)]
    for name, (low, high) in bounds.items():
        strata = rng.permutation(samples)
        offsets = rng.random(samples)
        unit = (strata + offsets) / samples
        for i in range(samples):
            out[i][name] = float(low + unit[i] * (high - low))
    return out


def uniform_random(
    bounds: Mapping[str, tuple[float, float]], samples: int, seed: int
) -> list[Point]:
    """Independent uniform samples, seeded like `latin_hypercube` (PCG64)."""
    rng = np.random.default_rng(seed)
    out: list[Point] = [{} for _ in range(samples)]
    for name, (low, high) in bounds.items():
        for i, u in enumerate(rng.random(samples)):
            out[i][name] = float(low + u * (high - low))
    return out
