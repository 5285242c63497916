"""What every benchmark prints: the project's figure, the baseline's, their ratio, the machine.

Timing thresholds never live in unit tests (the machines are shared and noisy); they live
here, as figures a person reads next to a baseline measured seconds earlier.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


def machine() -> str:
    cpus = os.cpu_count()
    return f"{platform.node()} {platform.machine()} {cpus} cpu python {platform.python_version()}"


@dataclass
class Figure:
    name: str
    unit: str
    samples: list[float]
    baseline_name: str = ""
    baseline_samples: list[float] = field(default_factory=list)
    higher_is_better: bool = True
    target_ratio: float | None = None
    note: str = ""

    @property
    def value(self) -> float:
        return statistics.median(self.samples)

    @property
    def baseline(self) -> float | None:
        return statistics.median(self.baseline_samples) if self.baseline_samples else None

    @property
    def ratio(self) -> float | None:
        """Project relative to baseline, oriented so that > 1 is always better for us."""
        if self.baseline is None or self.value == 0 or self.baseline == 0:
            return None
        return self.value / self.baseline if self.higher_is_better else self.baseline / self.value

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(value=self.value, baseline=self.baseline, ratio=self.ratio, machine=machine())
        return data

    def line(self) -> str:
        spread = f"[{min(self.samples):.4g}..{max(self.samples):.4g}]"
        text = f"{self.name}: {self.value:.4g} {self.unit} {spread}"
        if self.baseline is not None:
            base = self.baseline_samples
            text += (
                f" | {self.baseline_name}: {self.baseline:.4g} {self.unit}"
                f" [{min(base):.4g}..{max(base):.4g}] | ratio {self.ratio:.2f}"
            )
            if self.target_ratio is not None:
                verdict = "meets" if (self.ratio or 0) >= self.target_ratio else "MISSES"
                text += f" ({verdict} target {self.target_ratio:.2f})"
        if self.note:
            text += f" — {self.note}"
        return text


def repeat(measure: Callable[[], float], times: int = 5) -> list[float]:
    return [measure() for _ in range(times)]


def rate(count: int, started: float) -> float:
    return count / (time.perf_counter() - started)


def report(figures: list[Figure], json_path: str | None = None) -> None:
    print(f"machine: {machine()}")
    for figure in figures:
        print(figure.line())
    if json_path:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump([f.as_dict() for f in figures], handle, indent=2)


def arguments(doc: str | None) -> argparse.ArgumentParser:
    """Every module's command line: `--quick` for the small sizes, `--json` to keep figures."""
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    return parser
