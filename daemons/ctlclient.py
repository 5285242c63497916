"""The HTTP client behind `mdfctl`: one daemon, over its UNIX socket or TCP with a token.

Every failure becomes a `CtlError` carrying the exit code `mdfctl` promises: 1 refused or
failed, 2 bad input, 4 daemon unreachable — with the socket path or URL it tried, because "is
the daemon running, and is this the right MDF?" is the operator's first question.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 4

REQUEST_TIMEOUT = 30.0
# Status codes the daemon uses for the operator's own mistakes (unknown run, invalid recipe).
BAD_INPUT_STATUSES = {400, 404, 413, 422}


class CtlError(Exception):
    def __init__(self, code: int, message: str, details: list[str] | None = None) -> None:
        self.code = code
        self.details = details or []
        super().__init__(message)


@dataclass(frozen=True)
class Target:
    """Where the daemon listens: a UNIX socket path, or a base URL with a bearer token."""

    socket: Path | None = None
    url: str | None = None
    token: str | None = None

    def describe(self) -> str:
        return f"socket {self.socket}" if self.socket is not None else f"URL {self.url}"


class Client:
    def __init__(self, target: Target, timeout: float = REQUEST_TIMEOUT) -> None:
        self.target = target
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        connector: aiohttp.BaseConnector | None = None
        if self.target.socket is not None:
            connector = aiohttp.UnixConnector(path=str(self.target.socket))
        headers = {}
        if self.target.token is not None:
            headers["Authorization"] = f"Bearer {self.target.token}"
        self._session = aiohttp.ClientSession(connector=connector, headers=headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def _url(self, path: str) -> str:
        base = self.target.url.rstrip("/") if self.target.url else "http://mdfd"
        return base + path

    def _unreachable(self, exc: BaseException) -> CtlError:
        return CtlError(
            EXIT_UNREACHABLE,
            f"mdfd daemon unreachable at {self.target.describe()}: {exc}",
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        data: str | bytes | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One request; the decoded JSON (or text) of a 2xx, a CtlError otherwise."""
        assert self._session is not None
        try:
            async with self._session.request(
                method,
                self._url(path),
                data=data,
                json=json_body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                body = await response.read()
                status = response.status
                content_type = response.content_type
        except (aiohttp.ClientConnectionError, OSError, TimeoutError) as exc:
            raise self._unreachable(exc) from None
        decoded: Any = body.decode(errors="replace")
        if content_type == "application/json":
            decoded = json.loads(decoded or "null")
        if 200 <= status < 300:
            return decoded
        raise _refusal(status, decoded)

    async def stream(self, path: str) -> AsyncGenerator[dict[str, Any]]:
        """The NDJSON event stream, one decoded event at a time, until the daemon ends it."""
        assert self._session is not None
        try:
            async with self._session.get(
                self._url(path),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout),
            ) as response:
                if response.status != 200:
                    body = await response.read()
                    try:
                        decoded: Any = json.loads(body)
                    except ValueError:
                        decoded = body.decode(errors="replace")
                    raise _refusal(response.status, decoded)
                async for line in response.content:
                    if line.strip():
                        yield json.loads(line)
        except (aiohttp.ClientConnectionError, OSError, TimeoutError) as exc:
            raise self._unreachable(exc) from None


def _refusal(status: int, body: Any) -> CtlError:
    message = body.get("error", "") if isinstance(body, dict) else str(body).strip()
    details = list(body.get("problems", [])) if isinstance(body, dict) else []
    if status == 401:
        return CtlError(EXIT_FAILED, f"refused: {message} (check the token)")
    code = EXIT_BAD_INPUT if status in BAD_INPUT_STATUSES else EXIT_FAILED
    return CtlError(code, f"{message or 'request failed'} (HTTP {status})", details)
