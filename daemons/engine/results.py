"""What a finished point hands to the checkpoint and to upstream record building."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from mdfd.daemons.core.config import LoadedConfig
from mdfd.daemons.core.stats import PointStats
from mdfd.daemons.store import PointStatus
from mdfd.recipes.loader import LoadedRecipe


@dataclass(frozen=True)
class RunContext:
    """Run-level facts every record of the run shares (provenance)."""

    run_id: str
    recipe: LoadedRecipe
    config: LoadedConfig
    identities: dict[str, str]
    data_file: str
    data_paths: dict[str, str]

    @cached_property
    def acquired(self) -> list[str]:
        """The recipe's acquired channels in order, worked out once: every point's
        statistics begin with them."""
        return self.recipe.model.acquired_channels()


@dataclass(frozen=True, slots=True)
class Choice:
    """How an adaptive campaign chose a point and what the point gave its objectives."""

    source: str  # initial (design), optimiser or person
    method: str  # latin_hypercube / random, the optimiser's name, or person
    optimiser: str
    optimiser_version: str
    seed: int
    trial: int
    objectives: dict[str, float]
    feasible: bool


@dataclass(frozen=True)
class PointResult:
    run: RunContext
    point_index: int
    parameters: dict[str, float]
    stats: PointStats
    started_at: float
    ended_at: float
    status: PointStatus
    choice: Choice | None = None


@dataclass(slots=True)
class Progress:
    """How far the run is, for each point's events and the remaining-time estimate."""

    began: float
    total: int
    done: int
    measured_now: int = 0


@dataclass(frozen=True, slots=True)
class Measured:
    """A point whose steps have run, before its checkpoint."""

    index: int
    point: dict[str, float]
    status: PointStatus
    message: str
    started: float
    ended: float
    choice: Choice | None = None
