"""The MDF configuration: one YAML file per Miniature Data Factory.

Validated completely before anything is touched. Each instrument is checked against the config
model of its own driver, each simulator against its own settings model, so a driver author
defines their fields once and the located error messages come for free.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from mdfd.drivers import InstrumentConfig, UnknownDriver, config_model
from mdfd.recipes.located import (
    InputError,
    LocatedDocument,
    PathKey,
    Problem,
    load_located,
)
from mdfd.recipes.model import MAX_POINTS
from mdfd.recipes.units import UnitError, duration_seconds, parse_unit
from mdfd.simulators.base import SimulatorSettings, UnknownSimulator, settings_model

from .envvars import expand_env, variables_in
from .webconfig import Web

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Domain(StrEnum):
    CHEMISTRY = "chemistry"
    METAL = "metal"
    CERAMIC = "ceramic"
    TEXTILE = "textile"


class Identity(Strict):
    """Who the MDF is. `domains` lists the material domains it serves (`domain: x` is the
    one-domain shorthand of release 0.1); a recipe of another domain is refused (ADR 0042)."""

    id: str = Field(pattern=NAME_PATTERN)
    domain: Domain | None = None
    domains: list[Domain] = []
    site: str
    name: str = ""

    @model_validator(mode="after")
    def _one_domain_key(self) -> Identity:
        if self.domain is not None and self.domains:
            raise ValueError("give `domains: [...]` or the shorthand `domain: x`, not both")
        if self.domain is None and not self.domains:
            raise ValueError("missing `domains: [...]` (the material domains this MDF serves)")
        return self

    @property
    def served(self) -> list[Domain]:
        """The material domains this MDF serves, in the order the config lists them."""
        return list(self.domains) if self.domains else [self.domain] if self.domain else []


class Storage(Strict):
    data_dir: Path
    state_dir: Path
    runtime_dir: Path | None = None

    @property
    def control_socket(self) -> Path:
        return (self.runtime_dir or self.state_dir) / "control.sock"


class Simulation(Strict):
    time_scale: float = Field(default=1.0, gt=0, le=100_000)
    seed: int = 0


class Interlock(Strict):
    channel: str = Field(pattern=r"^[^.]+\.[^.]+$")
    above: float | None = None
    below: float | None = None
    message: str = ""

    @model_validator(mode="after")
    def _one_bound(self) -> Interlock:
        # A model validator: a field validator on `below` never runs when `below` is omitted.
        if self.above is None and self.below is None:
            raise ValueError("an interlock needs `above` or `below`")
        return self

    def breached_by(self, value: float) -> str | None:
        if self.above is not None and value > self.above:
            return f"above {self.above}"
        if self.below is not None and value < self.below:
            return f"below {self.below}"
        return None


WallSeconds = Annotated[float, BeforeValidator(duration_seconds)]


class Safety(Strict):
    interlocks: list[Interlock] = []
    safe_state: dict[str, float | int | bool | str] = Field(
        default_factory=dict, description="channel (instrument.channel) -> value to apply"
    )
    unverifiable_after: WallSeconds | None = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="wall seconds an interlocked channel may go unread before the run stops"
        " in the safe state; null: never (a warning only)",
    )


PUBLISHER_NAME = r"^[A-Za-z][A-Za-z0-9_-]*$"


class PublisherBase(Strict):
    """What every publisher shares: its name (its cursor in the outbox) and its retry policy."""

    name: str = Field(pattern=PUBLISHER_NAME)
    batch_size: int = Field(default=100, ge=1, le=10_000, description="records per delivery")
    retry_initial: float = Field(default=1.0, gt=0, le=3600, description="first backoff, s")
    retry_max: float = Field(default=60.0, gt=0, le=86_400, description="backoff cap, s")


class FilePublisher(PublisherBase):
    """JSON Lines spool: one file per run, appended and fsynced batch by batch."""

    type: Literal["file"]
    name: str = Field(default="file", pattern=PUBLISHER_NAME)
    directory: Path


class HttpPublisher(PublisherBase):
    """POST batches of records to the platform's ingest endpoint."""

    type: Literal["http"]
    name: str = Field(default="http", pattern=PUBLISHER_NAME)
    url: str = Field(pattern=r"^https?://")
    token_env: str | None = Field(
        default=None, description="environment variable holding the bearer token"
    )
    headers_env: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")],
        Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")],
    ] = Field(
        default_factory=dict,
        description="header name -> environment variable holding its value (an API key)",
    )
    verify_tls: bool = True
    ca_file: Path | None = Field(default=None, description="CA bundle for a private PKI")
    timeout: float = Field(default=30.0, gt=0, le=600, description="seconds per request")


class MqttPublisher(PublisherBase):
    """QoS 1 to `{prefix}/{site}/{mdf_id}/records`, retained status online/offline."""

    type: Literal["mqtt"]
    name: str = Field(default="mqtt", pattern=PUBLISHER_NAME)
    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    prefix: str = Field(default="mdf", pattern=r"^[^#+]+$")
    client_id: str | None = Field(default=None, description="default: mdfd-{mdf_id}-{name}")
    username: str | None = None
    password_env: str | None = Field(
        default=None, description="environment variable holding the password"
    )
    tls: bool = False
    ca_file: Path | None = None
    keepalive: int = Field(default=30, ge=5, le=3600)
    timeout: float = Field(default=30.0, gt=0, le=600, description="seconds for acks")
    max_inflight: int = Field(default=20, ge=1, le=65535)


Publisher = Annotated[FilePublisher | HttpPublisher | MqttPublisher, Field(discriminator="type")]


class Upstream(Strict):
    publishers: list[Publisher] = []
    exit_drain_timeout: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="seconds `mdfd run` spends delivering before it exits (the rest waits)",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Upstream:
        names = [publisher.name for publisher in self.publishers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"publisher names must be unique: {', '.join(duplicates)}")
        return self


class ControlTcp(Strict):
    """TCP listener for remote operators; every request must carry the bearer token."""

    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    max_connections: int = Field(
        default=64, ge=1, le=4096, description="open TCP connections; more are refused at once"
    )
    idle_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="seconds a connection may take to send a request's headers, or sit idle",
    )
    token_env: str = Field(
        default="MDFD_CONTROL_TOKEN",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="environment variable holding the token (never the token itself)",
    )


class Control(Strict):
    """The daemon's control API: always its UNIX socket, TCP only when configured."""

    tcp: ControlTcp | None = None
    max_request_bytes: int = Field(default=1_048_576, ge=4096, le=64 * 1024 * 1024)
    body_timeout: float = Field(
        default=30.0, gt=0, le=3600, description="seconds to receive a request's body"
    )
    validation_timeout: float = Field(
        default=10.0, gt=0, le=600, description="seconds to parse and validate a submitted recipe"
    )


class Limits(Strict):
    """What one run may ask of this MDF; checked at validation, before anything is expanded."""

    max_points: int = Field(default=100_000, ge=1, le=MAX_POINTS)


RecoveryAction = Literal["hold", "resume"]


class Recovery(Strict):
    """What `mdfd serve` does at start with unfinished runs, by who executed them last.

    `hold`: the run waits, shown `held`, until an operator says `mdfctl resume ID` (or
    aborts it). `resume`: it is continued at its first open point without asking.
    """

    cli_runs: RecoveryAction = Field(
        default="hold",
        description="runs started or resumed by a person with `mdfd run`/`mdfd resume`",
    )
    daemon_runs: RecoveryAction = Field(
        default="resume",
        description="runs the daemon was executing when it crashed or was stopped",
    )


class MdfConfig(Strict):
    """The whole file; `instruments` and `simulators` hold driver- and kind-specific models."""

    mdf: Identity
    storage: Storage
    vocabulary: Path = Path("vocabulary.yaml")
    simulation: Simulation | None = None
    instruments: dict[Annotated[str, Field(pattern=NAME_PATTERN)], InstrumentConfig]
    safety: Safety = Safety()
    simulators: dict[Annotated[str, Field(pattern=NAME_PATTERN)], SimulatorSettings] = {}
    upstream: Upstream = Upstream()
    control: Control = Control()
    recovery: Recovery = Recovery()
    limits: Limits = Limits()
    web: Web | None = None

    @property
    def time_scale(self) -> float:
        return self.simulation.time_scale if self.simulation else 1.0


class LoadedConfig(BaseModel):
    """A validated config together with where it came from (for snapshots and errors)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    path: Path
    text: str
    model: MdfConfig

    def channel(self, qualified: str) -> tuple[str, str] | None:
        instrument, _, channel = qualified.partition(".")
        config = self.model.instruments.get(instrument)
        if config is None or channel not in config.channels:
            return None
        return instrument, channel


def substitute_env(
    value: Any, path: tuple[str | int, ...], doc: LocatedDocument, problems: list[Problem]
) -> Any:
    """Expand `${NAME}` and `${NAME:-default}` in every string; an unset NAME without a
    default is a problem located at the field (envvars.expand_env)."""
    if isinstance(value, dict):
        return {k: substitute_env(v, (*path, k), doc, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, (*path, i), doc, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def missing(name: str) -> None:
        problems.append(doc.problem(path, f"environment variable {name} is not set"))

    return expand_env(value, missing)


def as_written(config: LoadedConfig) -> LocatedDocument:
    """The config's YAML before `${VAR}` expansion, with its line numbers: for a problem found
    after loading (a simulator's port is taken) that must still say where, and what to change."""
    return load_located(config.path, config.text)


def variables_of(doc: LocatedDocument, path: PathKey) -> list[str]:
    """The environment variables a field's value is expanded from, as written in `doc`."""
    value = doc.data
    for key in path:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return []
    return variables_in(value) if isinstance(value, str) else []


def load_config(path: Path | str) -> LoadedConfig:
    """Load and validate an MDF config; raise InputError listing every located problem."""
    doc = load_located(path)
    if not isinstance(doc.data, dict):
        raise InputError([doc.problem((), "an MDF config must be a mapping")])
    problems: list[Problem] = []
    data = substitute_env(doc.data, (), doc, problems)
    instruments = _validate_section(doc, data, "instruments", _instrument_model, problems)
    simulators = _validate_section(doc, data, "simulators", _simulator_model, problems)
    base = {**data, "instruments": {}, "simulators": {}}
    try:
        model = MdfConfig.model_validate(base)
    except ValidationError as exc:
        problems.extend(
            p for p in doc.problems_from(exc) if p.field not in ("instruments", "simulators")
        )
        model = None
    if not data.get("instruments"):
        problems.append(doc.problem(("instruments",), "at least one instrument is required"))
    if model is not None and not problems:
        model = model.model_copy(update={"instruments": instruments, "simulators": simulators})
        problems.extend(_cross_check(doc, model))
    if problems or model is None:
        raise InputError(problems)
    config_path = Path(path)
    vocabulary = model.vocabulary
    if not vocabulary.is_absolute():
        vocabulary = config_path.parent / vocabulary
    model = model.model_copy(update={"vocabulary": vocabulary})
    return LoadedConfig(path=config_path, text=doc.text, model=model)


def _instrument_model(spec: dict[str, Any]) -> type[BaseModel]:
    return config_model(str(spec.get("driver")))


def _simulator_model(spec: dict[str, Any]) -> type[BaseModel]:
    return settings_model(str(spec.get("kind")))


def _validate_section(
    doc: LocatedDocument,
    data: dict[str, Any],
    section: str,
    model_for: Any,
    problems: list[Problem],
) -> dict[str, Any]:
    raw = data.get(section) or {}
    if not isinstance(raw, dict):
        problems.append(doc.problem((section,), "must be a mapping of name -> settings"))
        return {}
    out: dict[str, Any] = {}
    for name, spec in raw.items():
        where = (section, name)
        if not re.match(NAME_PATTERN, str(name)):
            problems.append(doc.problem(where, "names start with a letter: letters, digits, _ -"))
            continue
        if not isinstance(spec, dict):
            problems.append(doc.problem(where, "must be a mapping"))
            continue
        try:
            model = model_for(spec)
        except (UnknownDriver, UnknownSimulator) as exc:
            key = "driver" if section == "instruments" else "kind"
            problems.append(doc.problem((*where, key), str(exc.args[0])))
            continue
        except (ImportError, AttributeError) as exc:
            problems.append(doc.problem(where, f"cannot load its implementation: {exc}"))
            continue
        try:
            out[name] = model.model_validate(spec)
        except ValidationError as exc:
            problems.extend(doc.problems_from(exc, where))
    return out


# What a file system takes (Linux NAME_MAX, PATH_MAX), less room for the longest name mdfd
# puts in a storage directory: a run's data file, `{stamp}-{recipe name}-{hex}.h5`.
NAME_MAX = 255
PATH_MAX = 4095 - 128


def _storage_problems(doc: LocatedDocument, storage: Storage) -> list[Problem]:
    """A directory the system cannot name would fail at the first run, with a traceback."""
    problems = []
    for field in ("data_dir", "state_dir", "runtime_dir"):
        path = getattr(storage, field)
        if path is None:
            continue
        encoded = os.fsencode(path)
        longest = max((len(part) for part in encoded.split(b"/")), default=0)
        if len(encoded) > PATH_MAX or longest > NAME_MAX:
            problems.append(
                doc.problem(
                    ("storage", field),
                    f"path too long for the file system (at most {PATH_MAX} bytes, "
                    f"{NAME_MAX} per name)",
                )
            )
    return problems


def _cross_check(doc: LocatedDocument, model: MdfConfig) -> list[Problem]:
    """References between sections: interlocks and safe state name real channels; storage
    paths the file system can hold."""
    problems: list[Problem] = _storage_problems(doc, model.storage)
    for instrument_name, instrument in model.instruments.items():
        for channel_name, channel in instrument.channels.items():
            try:
                parse_unit(channel.unit)
            except UnitError as exc:
                where: tuple[str, ...] = (
                    "instruments",
                    instrument_name,
                    "channels",
                    channel_name,
                    "unit",
                )
                problems.append(doc.problem(where, str(exc)))

    def known(qualified: str) -> InstrumentConfig | None:
        instrument, _, channel = qualified.partition(".")
        config = model.instruments.get(instrument)
        return config if config is not None and channel in config.channels else None

    for index, interlock in enumerate(model.safety.interlocks):
        if known(interlock.channel) is None:
            problems.append(
                doc.problem(
                    ("safety", "interlocks", index, "channel"),
                    f"unknown channel {interlock.channel!r}",
                )
            )
    for qualified, value in model.safety.safe_state.items():
        where = ("safety", "safe_state", qualified)
        target = known(qualified)
        if target is None:
            problems.append(doc.problem(where, f"unknown channel {qualified!r}"))
            continue
        channel = target.channels[qualified.partition(".")[2]]
        if not channel.writable:
            problems.append(doc.problem(where, "safe state writes a channel that is not writable"))
        elif (
            channel.limits is not None
            and isinstance(value, int | float)
            and not channel.limits.contains(float(value))
        ):
            problems.append(doc.problem(where, f"safe value {value} outside the channel's limits"))
    return problems
