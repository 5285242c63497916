"""The HTTP client behind `mdfctl`: one daemon, over its UNIX socket or TCP with a token.

Standard library only (asyncio streams, one HTTP/1.1 request per connection): importing aiohttp
cost `mdfctl` 0.135 s of its ~0.3 s of CPU, on the same two cores as a daemon still starting
(ADR 0085). The daemon is the only server it talks to, so the subset of HTTP it speaks is
small: a status line, headers, a body by Content-Length, chunked, or up to the close.

Every failure becomes a `CtlError` carrying the exit code `mdfctl` promises: 1 refused or
failed, 2 bad input, 4 daemon unreachable — with the socket path or URL it tried, because "is
the daemon running, and is this the right MDF?" is the operator's first question.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 4

REQUEST_TIMEOUT = 30.0
# Status codes the daemon uses for the operator's own mistakes (unknown run, invalid recipe).
BAD_INPUT_STATUSES = {400, 404, 413, 422}
MAX_HEAD_LINES = 100
"""A status line and headers beyond this are not the daemon's answer."""


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


@dataclass(frozen=True)
class _Response:
    """A response whose head has been read; `chunks()` reads its body."""

    status: int
    headers: dict[str, str]  # names lower-cased
    reader: asyncio.StreamReader

    @property
    def content_type(self) -> str:
        value = self.headers.get("content-type", "application/octet-stream")
        return value.split(";", 1)[0].strip().lower()

    async def chunks(self) -> AsyncIterator[bytes]:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            while True:
                size = _chunk_size(await self.reader.readline())
                if size == 0:
                    return  # trailers, if any, are left unread: the connection closes
                yield await self.reader.readexactly(size)
                await self.reader.readexactly(2)  # the CRLF after each chunk
        elif "content-length" in self.headers:
            yield await self.reader.readexactly(int(self.headers["content-length"]))
        else:
            while chunk := await self.reader.read(65536):
                yield chunk

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])


class Client:
    def __init__(self, target: Target, timeout: float = REQUEST_TIMEOUT) -> None:
        self.target = target
        self._timeout = timeout

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Nothing to close: every request has its own connection, closed when it is done."""

    def _unreachable(self, exc: BaseException) -> CtlError:
        reason = str(exc) or f"no answer within {self._timeout:g} s"
        return CtlError(
            EXIT_UNREACHABLE,
            f"mdfd daemon unreachable at {self.target.describe()}: {reason}",
        )

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str, str]:
        """The connection, the Host header and the base path requests go under."""
        if self.target.socket is not None:
            reader, writer = await asyncio.open_unix_connection(str(self.target.socket))
            return reader, writer, "mdfd", ""
        url = urlsplit(self.target.url or "")
        secure = url.scheme == "https"
        reader, writer = await asyncio.open_connection(
            url.hostname,
            url.port or (443 if secure else 80),
            ssl=ssl.create_default_context() if secure else None,
        )
        return reader, writer, url.netloc, url.path.rstrip("/")

    @asynccontextmanager
    async def _exchange(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> AsyncIterator[_Response]:
        """Send one request and read the response's head; the connection closes on exit."""
        reader, writer, host, base = await self._connect()
        try:
            fields = {"Host": host, "Connection": "close", **headers}
            if self.target.token is not None:
                fields["Authorization"] = f"Bearer {self.target.token}"
            if body or method in ("POST", "PUT"):
                fields["Content-Length"] = str(len(body))
            lines = [f"{method} {base}{path} HTTP/1.1"]
            for name, value in fields.items():
                if "\r" in value or "\n" in value:
                    raise CtlError(EXIT_BAD_INPUT, f"a line break in the {name} header: {value!r}")
                lines.append(f"{name}: {value}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
            yield await _read_head(reader)
        finally:
            writer.close()

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
        fields = dict(headers or {})
        body = data.encode() if isinstance(data, str) else (data or b"")
        if json_body is not None:
            body = json.dumps(json_body).encode()
            fields["Content-Type"] = "application/json"
        try:
            async with asyncio.timeout(self._timeout):
                async with self._exchange(method, path, body, fields) as response:
                    raw = await response.read()
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            raise self._unreachable(exc) from None
        decoded: Any = raw.decode(errors="replace")
        if response.content_type == "application/json":
            decoded = json.loads(decoded or "null")
        if 200 <= response.status < 300:
            return decoded
        raise _refusal(response.status, decoded)

    async def stream(self, path: str) -> AsyncGenerator[dict[str, Any]]:
        """The NDJSON event stream, one decoded event at a time, until the daemon ends it.

        Only connecting and the response's head are bounded by the timeout: a run's events
        may be minutes apart."""
        try:
            async with self._exchange("GET", path, b"", {}) as response:
                if response.status != 200:
                    async with asyncio.timeout(self._timeout):
                        raw = await response.read()
                    try:
                        decoded: Any = json.loads(raw)
                    except ValueError:
                        decoded = raw.decode(errors="replace")
                    raise _refusal(response.status, decoded)
                pending = b""
                async for chunk in response.chunks():
                    *lines, pending = (pending + chunk).split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield json.loads(line)
        except (OSError, TimeoutError) as exc:
            raise self._unreachable(exc) from None
        except asyncio.IncompleteReadError:
            return  # the daemon went away mid-stream: the stream has ended


async def _read_head(reader: asyncio.StreamReader) -> _Response:
    """The status line and headers; a ConnectionError if the peer is not an HTTP server."""
    status_line = (await reader.readline()).decode("latin-1")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP answer: {status_line.strip()[:80]!r}")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEAD_LINES):
        line = (await reader.readline()).decode("latin-1").strip()
        if not line:
            return _Response(int(parts[1]), headers, reader)
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    raise ConnectionError(f"more than {MAX_HEAD_LINES} header lines: not the daemon's answer")


def _chunk_size(line: bytes) -> int:
    if not line:
        raise asyncio.IncompleteReadError(b"", None)  # the daemon closed mid-body
    try:
        return int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        raise ConnectionError(f"a broken chunked body: {line[:40]!r}") from None


def _refusal(status: int, body: Any) -> CtlError:
    message = body.get("error", "") if isinstance(body, dict) else str(body).strip()
    details = list(body.get("problems", [])) if isinstance(body, dict) else []
    if status == 401:
        return CtlError(EXIT_FAILED, f"refused: {message} (check the token)")
    code = EXIT_BAD_INPUT if status in BAD_INPUT_STATUSES else EXIT_FAILED
    return CtlError(code, f"{message or 'request failed'} (HTTP {status})", details)
