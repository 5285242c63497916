"""Configuration of an OPC-UA instrument: endpoint, security, login and the channel map."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..base import ChannelConfig, InstrumentConfig, Reconnect, StrictModel
from ..deprecated import rename_deprecated
from .nodetext import parse_node_text


class SecurityConfig(StrictModel):
    """The secure channel. Basic256Sha256 needs the client's certificate and private key."""

    policy: Literal["None", "Basic256Sha256"] = "None"
    mode: Literal["Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    certificate: Path | None = Field(default=None, description="client certificate (DER or PEM)")
    private_key: Path | None = Field(default=None, description="client private key (PEM)")
    server_certificate: Path | None = Field(
        default=None, description="pin the server's certificate; unset takes it from its endpoint"
    )

    @model_validator(mode="after")
    def _keys_for_policy(self) -> SecurityConfig:
        if self.policy != "None" and (self.certificate is None or self.private_key is None):
            raise ValueError(f"security policy {self.policy} needs certificate and private_key")
        return self


class OpcUaChannel(ChannelConfig):
    node: str = Field(description="node id, e.g. nsu=urn:x;s=Reactor.Temperature or ns=2;i=7")
    subscribe: bool = Field(default=False, description="deliver by subscription, not polling")
    sampling_interval: float | None = Field(
        default=None, ge=0, description="ms; default: the instrument's sampling_interval"
    )

    @field_validator("node")
    @classmethod
    def _parses(cls, node: str) -> str:
        parse_node_text(node)
        return node


class OpcUaInstrument(InstrumentConfig[OpcUaChannel]):
    driver: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://[^/\s]+", description="opc.tcp://host:port/path")
    namespace: str | None = Field(
        default=None, description="namespace URI for node ids that name no namespace"
    )
    timeout: float = Field(default=4.0, gt=0, description="seconds per request")
    watchdog_interval: float = Field(
        default=1.0, gt=0, description="seconds between liveness probes of the server"
    )
    security: SecurityConfig = SecurityConfig()
    username: str | None = None
    password_env: str | None = Field(
        default=None, description="environment variable holding the password"
    )
    publishing_interval: float = Field(default=100.0, gt=0, description="ms")
    sampling_interval: float = Field(default=50.0, ge=0, description="ms")
    reconnect: Reconnect = Field(
        default_factory=Reconnect,
        description="backoff between connection attempts; `attempts` bounds the first connect"
        " and each reconnect, made by the next call after a loss",
    )

    @model_validator(mode="before")
    @classmethod
    def _deprecated_keys(cls, data: Any) -> Any:
        """Configs written before every driver shared one `reconnect` block load on."""
        return rename_deprecated(
            data,
            {
                "reconnect.initial_delay": "reconnect.initial",
                "reconnect.max_delay": "reconnect.maximum",
                "reconnect.connect_attempts": "reconnect.attempts",
            },
            driver="opcua",
        )

    @model_validator(mode="after")
    def _password_needs_user(self) -> OpcUaInstrument:
        if self.password_env is not None and self.username is None:
            raise ValueError("password_env is set but username is not")
        return self
