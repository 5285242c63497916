"""Who may use the operator's page, and as what (ADR 0083).

Two roles: `operator` (watch and change) and `viewer` (watch only). With no token configured
(loopback only, the config refuses anything else) every visitor is the operator, as anyone
who can reach the UNIX socket is. With tokens, a visitor logs in once with a token and gets a
session cookie signed with that token: it survives a daemon restart (the page reconnects
without a new login) and dies when the token changes.

Every state-changing request must carry the session's CSRF token in `X-CSRF-Token` (htmx sends
it from the page) and, when the browser names one, an `Origin` equal to the page's own: a
page on another site can neither read the token nor forge the header.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from mdfd.daemons.core.webconfig import Web
from mdfd.recipes.located import InputError, Problem

Role = Literal["operator", "viewer"]
COOKIE = "mdfd_session"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Session:
    role: Role
    csrf: str


class Access:
    """Tokens by role, and the signing of sessions and CSRF tokens."""

    def __init__(self, tokens: dict[Role, str], session_seconds: float) -> None:
        self.tokens = tokens
        self.session_seconds = session_seconds
        # Without tokens nothing is signed with a token: a per-process secret keys the CSRF
        # token (a page left open over a restart gets the new one from its event stream).
        self._open_key = secrets.token_bytes(32)

    @classmethod
    def from_env(cls, web: Web, config_path: str) -> Access:
        """Reads the tokens from the environment; a named but unset variable is bad input."""
        tokens: dict[Role, str] = {}
        for role, var, field in (
            ("operator", web.token_env, "web.token_env"),
            ("viewer", web.viewer_token_env, "web.viewer_token_env"),
        ):
            if var is None:
                continue
            value = os.environ.get(var, "")
            if not value:
                raise InputError(
                    [
                        Problem(
                            config_path,
                            None,
                            field,
                            f"environment variable {var} is unset or empty",
                        )
                    ]
                )
            tokens[role] = value  # type: ignore[index]
        if "viewer" in tokens and "operator" not in tokens:
            raise InputError(
                [
                    Problem(
                        config_path, None, "web.token_env", "a viewer token needs an operator token"
                    )
                ]
            )
        if tokens.get("viewer") is not None and tokens.get("viewer") == tokens.get("operator"):
            raise InputError(
                [
                    Problem(
                        config_path,
                        None,
                        "web.viewer_token_env",
                        "must differ from the operator token",
                    )
                ]
            )
        return cls(tokens, web.session_hours * 3600)

    @property
    def login_required(self) -> bool:
        return bool(self.tokens)

    def login(self, token: str) -> str | None:
        """The session cookie for a correct token, else None (compared in constant time)."""
        given = token.encode()
        for role, expected in self.tokens.items():
            if hmac.compare_digest(given, expected.encode()):
                expires = int(time.time() + self.session_seconds)
                payload = f"{role}.{expires}"
                return f"{payload}.{self._sign(role, payload)}"
        return None

    def session(self, cookie: str | None) -> Session | None:
        """The session a request belongs to: None means "log in first"."""
        if not self.login_required:
            return Session("operator", self._csrf("open"))
        if not cookie:
            return None
        parts = cookie.split(".")
        if len(parts) != 3 or parts[0] not in self.tokens:
            return None
        role: Role = "operator" if parts[0] == "operator" else "viewer"
        payload = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(parts[2].encode(), self._sign(role, payload).encode()):
            return None
        if not parts[1].isdigit() or int(parts[1]) < time.time():
            return None
        return Session(role, self._csrf(cookie))

    def _sign(self, role: Role, payload: str) -> str:
        return hmac.new(self.tokens[role].encode(), payload.encode(), hashlib.sha256).hexdigest()

    def _csrf(self, bound_to: str) -> str:
        key = self._open_key if not self.login_required else self._key()
        return hmac.new(key, f"csrf.{bound_to}".encode(), hashlib.sha256).hexdigest()

    def _key(self) -> bytes:
        return hashlib.sha256("\0".join(sorted(self.tokens.values())).encode()).digest()
