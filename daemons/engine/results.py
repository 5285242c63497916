"""What a finished point hands to the checkpoint and to upstream record building."""

from __future__ import annotations

from dataclasses import dataclass

from mdfd.recipes.loader import LoadedRecipe

from ..config import LoadedConfig
from ..stats import PointStats
from ..store import PointStatus


@dataclass(frozen=True)
class RunContext:
    """Run-level facts every record of the run shares (provenance)."""

    run_id: str
    recipe: LoadedRecipe
    config: LoadedConfig
    identities: dict[str, str]
    data_file: str
    data_paths: dict[str, str]


@dataclass(frozen=True)
class PointResult:
    run: RunContext
    point_index: int
    parameters: dict[str, float]
    stats: PointStats
    started_at: float
    ended_at: float
    status: PointStatus
