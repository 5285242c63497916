"""pint's parsed definitions are cached on disk (ADR 0053): the cache is written by a first
process and read by the next, and a cache that cannot be written or read never changes an
answer. Each case is a fresh interpreter, since the registry is built once per process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
from mdfd.recipes.units import compatible, convert, seconds
print(convert(5, "degC/min", "K/s"), seconds(2, "h"), convert(1, "HV", "HV"),
      compatible("ppmw", "dimensionless"), convert(1.8, "microohm*cm", "ohm*m"))
"""


def _answers(cache: Path) -> str:
    env = dict(os.environ, MDFD_CACHE_DIR=str(cache))
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_cache_is_written_then_read_with_the_same_answers(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _answers(cache)
    written = sorted((cache / "pint").glob("*.pickle"))
    assert written
    assert _answers(cache) == first
    per_second, two_hours, hardness, ratio, resistivity = first.split()
    assert float(per_second) == pytest.approx(5 / 60)
    assert float(two_hours) == 7200.0
    assert float(hardness) == 1.0
    assert ratio == "True"
    assert float(resistivity) == pytest.approx(1.8e-8)


def test_an_unwritable_or_corrupt_cache_gives_the_same_answers(tmp_path: Path) -> None:
    expected = _answers(tmp_path / "good")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert _answers(blocker) == expected
    for pickle in (tmp_path / "good" / "pint").glob("*.pickle"):
        pickle.write_bytes(pickle.read_bytes()[:100])  # as another process mid-write leaves it
    assert _answers(tmp_path / "good") == expected
