"""The `web:` section: the operator's page (ADR 0081, 0083).

Absent means off. It listens on loopback unless told otherwise; any other address must either
have TLS or say `insecure_http: true` out loud, and must have an operator token (a page anyone
on the network can open is a page anyone can abort a run from). A read-only token is optional.
Tokens come from environment variables, never from the file.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def is_loopback(host: str) -> bool:
    """Whether `host` only ever accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebTls(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cert: Path = Field(description="PEM certificate (chain) file")
    key: Path = Field(description="PEM private key file")


class Web(BaseModel):
    """The operator's page, served by `mdfd serve` on its own TCP listener."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", description="address to listen on; loopback by default")
    port: int = Field(ge=0, le=65535, description="TCP port; 0 picks a free one (printed)")
    tls: WebTls | None = None
    insecure_http: bool = Field(
        default=False,
        description="serve plain HTTP on a non-loopback address (an explicit, logged opt-out)",
    )
    token_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="variable holding the operator token (login required when set)",
    )
    viewer_token_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="variable holding the read-only token: watch, never change",
    )
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description="login lifetime")

    @model_validator(mode="after")
    def _guarded_off_loopback(self) -> Web:
        if is_loopback(self.host):
            return self
        if self.tls is None and not self.insecure_http:
            raise ValueError(
                f"web.host {self.host} is not loopback: configure web.tls (cert, key) "
                "or set web.insecure_http: true"
            )
        if self.token_env is None:
            raise ValueError(
                f"web.host {self.host} is not loopback: set web.token_env (operator login)"
            )
        return self

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"
