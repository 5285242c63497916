"""The standardized record `mdfd.record/1`: one per completed point, for the data platform.

A record says which material (raw materials, composition), made how (process), measured how and
with what result (properties), and where it came from (provenance, link to the HDF5 data). Its
id is derived, never drawn: the same MDF, run and point always give the same UUID, so a retry,
a resume or a re-delivery after a crash is recognisably the same record upstream.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from mdfd.daemons.core.clock import clock_kind
from mdfd.daemons.core.version import software_version
from mdfd.daemons.core.vocabulary import Item, load_vocabulary
from mdfd.daemons.engine.results import PointResult
from mdfd.recipes.model import MaterialItem, RecordItem
from mdfd.recipes.units import convert

SCHEMA_ID: Final = "mdfd.record/1"
RECORD_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:mdfd:record")
"""UUIDv5 namespace of record ids; changing it would change every id ever published."""

Value = bool | int | float | str | None


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ItemValue(Frozen):
    """One standard item: its vocabulary code, value in the vocabulary's unit, and spread."""

    code: str
    value: Value = Field(description="null when the channel gave no finite value")
    unit: str = Field(description="the vocabulary's unit for this code ('' = dimensionless)")
    std: float | None = Field(default=None, description="sample standard deviation (aggregates)")
    n: int | None = Field(default=None, description="samples aggregated")

    @model_serializer(mode="wrap")
    def _omit_absent_spread(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """`std` and `n` appear only for aggregates; `value` always (null = no finite value)."""
        data = handler(self)
        for key in ("std", "n"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class MdfRef(Frozen):
    id: str
    domains: list[str] = Field(description="the material domains this MDF serves (its config)")
    site: str


class RecipeRef(Frozen):
    name: str
    version: str
    sha256: str
    domain: str | None = Field(description="the material domain of the recipe; null if unsaid")


class ChoiceRef(Frozen):
    """How an adaptive campaign chose this point, and what it gave its objectives."""

    source: Literal["initial", "optimiser", "person"] = Field(
        description="the initial design, the optimiser, or a person (mdfctl campaign inject)"
    )
    method: str = Field(description="latin_hypercube / random, the optimiser's name, or person")
    optimiser: str
    optimiser_version: str
    seed: int
    trial: int = Field(description="trial number in the campaign (rejected proposals count)")
    objectives: dict[str, float | None]
    feasible: bool = Field(description="measured, and every outcome constraint met")


class PointRef(Frozen):
    index: int
    parameters: dict[str, float]
    chosen_by: ChoiceRef | None = Field(
        default=None, description="adaptive sweeps only: how the point was chosen"
    )


class Provenance(Frozen):
    mdf: MdfRef
    recipe: RecipeRef
    run_id: str
    point: PointRef
    instruments: dict[str, str] = Field(description="instrument name -> identify() answer")
    software: str
    clock: Literal["wall", "simulated"] = Field(
        description="what started_at/ended_at are: the wall clock, or the simulated process"
        " clock of a sim MDF (running time_scale times faster than the wall)"
    )
    time_scale: float = Field(description="process seconds per wall second (1 = wall clock)")
    started_at: dt.datetime
    ended_at: dt.datetime


class DataLink(Frozen):
    """Where the raw samples behind this record live."""

    file: str = Field(description="HDF5 file name (in the MDF's data directory)")
    summary: str = Field(description="per-point summary table; this point is row `point_index`")
    point_index: int
    channels: dict[str, str] = Field(description="channel -> NXlog group (select by point_index)")


class Record(Frozen):
    schema_: Literal["mdfd.record/1"] = Field(default=SCHEMA_ID, alias="schema")
    id: uuid.UUID
    provenance: Provenance
    raw_materials: list[ItemValue]
    composition: list[ItemValue]
    process: list[ItemValue]
    properties: list[ItemValue]
    data: DataLink

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        title="mdfd.record/1",
        json_schema_extra={"$id": "urn:mdfd:record:1"},
    )

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)


def record_id(mdf_id: str, run_id: str, point_index: int) -> uuid.UUID:
    return uuid.uuid5(RECORD_NAMESPACE, f"{mdf_id}/{run_id}/{point_index}")


def _timestamp(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _choice(result: PointResult) -> ChoiceRef | None:
    choice = result.choice
    if choice is None:
        return None
    return ChoiceRef(
        source=choice.source,
        method=choice.method,
        optimiser=choice.optimiser,
        optimiser_version=choice.optimiser_version,
        seed=choice.seed,
        trial=choice.trial,
        objectives={name: _finite(value) for name, value in choice.objectives.items()},
        feasible=choice.feasible,
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _typed(value: float | None, item: Item) -> Value:
    if value is None:
        return None
    if item.type == "int":
        return round(value)
    if item.type == "bool":
        return bool(value)
    return value


def _spread(std: float, source: str, target: str) -> float:
    """A spread converts by the scale only: 2 degC of std is 2 K, not 275.15 K."""
    return convert(std, source, target) - convert(0.0, source, target)


class RecordBuilder:
    """Turns a finished point into its record; one per run context (vocabulary looked up once)."""

    def __init__(self, vocabulary: Path) -> None:
        self.items = load_vocabulary(vocabulary).by_code()

    def build(self, result: PointResult) -> Record:
        run = result.run
        recipe = run.recipe
        identity = run.config.model.mdf
        mapping = recipe.model.record
        materials = recipe.model.materials
        return Record(
            id=record_id(identity.id, run.run_id, result.point_index),
            provenance=Provenance(
                mdf=MdfRef(
                    id=identity.id,
                    domains=[domain.value for domain in identity.served],
                    site=identity.site,
                ),
                recipe=RecipeRef(
                    name=recipe.model.recipe.name,
                    version=recipe.model.recipe.version,
                    sha256=recipe.sha256,
                    domain=recipe.model.recipe.domain,
                ),
                run_id=run.run_id,
                point=PointRef(
                    index=result.point_index,
                    parameters=dict(result.parameters),
                    chosen_by=_choice(result),
                ),
                instruments=dict(run.identities),
                software=software_version(),
                clock=clock_kind(run.config.model.time_scale),
                time_scale=run.config.model.time_scale,
                started_at=_timestamp(result.started_at),
                ended_at=_timestamp(result.ended_at),
            ),
            raw_materials=[self._material(m) for m in materials.raw_materials],
            composition=[self._material(m) for m in materials.composition],
            process=[self._mapped(m, result) for m in mapping.process],
            properties=[self._mapped(m, result) for m in mapping.properties],
            data=DataLink(
                file=Path(run.data_file).name,
                summary="/entry/summary",
                point_index=result.point_index,
                channels=dict(run.data_paths),
            ),
        )

    def _material(self, material: MaterialItem) -> ItemValue:
        item = self.items[material.code]
        if isinstance(material.value, str):
            return ItemValue(code=item.code, value=material.value, unit=item.unit)
        value = convert(float(material.value), material.unit, item.unit)
        return ItemValue(code=item.code, value=_typed(value, item), unit=item.unit)

    def _mapped(self, mapped: RecordItem, result: PointResult) -> ItemValue:
        item = self.items[mapped.code]
        parameters = result.run.recipe.model.sweep.parameters
        if mapped.source in parameters:
            unit = parameters[mapped.source].unit
            value: float | None = convert(float(result.parameters[mapped.source]), unit, item.unit)
            return ItemValue(code=item.code, value=_typed(value, item), unit=item.unit)
        instrument, _, channel = mapped.source.partition(".")
        unit = result.run.config.model.instruments[instrument].channels[channel].unit
        stats = result.stats.get(mapped.source)
        if stats is None or stats.n == 0:
            return ItemValue(code=item.code, value=None, unit=item.unit, n=0)
        raw = _finite(float(getattr(stats, mapped.stat)))
        value = None if raw is None else convert(raw, unit, item.unit)
        if mapped.stat == "last":
            return ItemValue(code=item.code, value=_typed(value, item), unit=item.unit)
        std = None
        if mapped.stat == "mean":
            finite_std = _finite(stats.std)
            std = None if finite_std is None else _spread(finite_std, unit, item.unit)
        if mapped.stat == "std" and value is not None:
            value = _spread(raw or 0.0, unit, item.unit)
        return ItemValue(
            code=item.code, value=_typed(value, item), unit=item.unit, std=std, n=stats.n
        )
