"""An `mdfd serve` process with its operator page, and a small HTTP client for that page
(raw http.client with its own cookie jar, so tests share no code with the page)."""

from __future__ import annotations

import http.client
import json
import re
import ssl
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from tests.daemon.harness import WAIT, Daemon, environment, wait_until, write_config

OPERATOR = "operator-secret-1"
VIEWER = "viewer-secret-2"
TOKENS = {"MDFD_WEB_TOKEN": OPERATOR, "MDFD_WEB_VIEWER_TOKEN": VIEWER}
LOGIN = {"token_env": "MDFD_WEB_TOKEN", "viewer_token_env": "MDFD_WEB_VIEWER_TOKEN"}


def web_config(tmp_path: Path, **web: Any) -> Path:
    """The daemon tests' memory MDF with a `web:` section (loopback, a free port)."""
    section = {"host": "127.0.0.1", "port": 0, **web}
    return write_config(tmp_path, yaml.safe_dump({"web": section}))


def start(config: Path, log: Path | None = None, **env: str) -> tuple[Daemon, str]:
    """The daemon serving, and its page's URL as it printed it (in `log`, a file of its own
    when the same config is served again)."""
    daemon = Daemon(config, env=environment(**env), log=log).start()
    found: list[str] = []

    def announced() -> bool:
        match = re.search(r"^operator page: (\S+)$", daemon.log_text(), re.MULTILINE)
        if match:
            found.append(match.group(1))
        return bool(found)

    wait_until(announced, "the operator page's URL", daemon)
    return daemon, found[0]


class Browser:
    """Requests as a browser sends them: cookies kept, the page's CSRF token sent back."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.url = url.rstrip("/")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 443
        self.tls = parts.scheme == "https"
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        csrf: bool = True,
    ) -> tuple[int, dict[str, str], str]:
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=WAIT, context=context
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=WAIT)
        sent = {"HX-Request": "true"} if path != "/" and method == "GET" else {}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method != "GET" and csrf and self.csrf:
            sent["X-CSRF-Token"] = self.csrf
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        sent.update(headers or {})
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";")[0].strip('"')
        text = data.decode(errors="replace")
        token = re.search(r'"X-CSRF-Token": "([0-9a-f]+)"', text)
        if token:
            self.csrf = token.group(1)
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text

    def get(self, path: str) -> str:
        status, _, text = self.request("GET", path)
        assert status == 200, (status, text)
        return text

    def login(self, token: str) -> int:
        status, _, _ = self.request("POST", "/login", {"token": token})
        if status == 303:
            self.get_page()
        return status

    def get_page(self) -> str:
        status, _, text = self.request("GET", "/")
        assert status == 200, (status, text)
        return text


def status_of(daemon: Daemon, run_id: str) -> str:
    return str(daemon.run(run_id)["status"])


def as_json(text: str) -> Any:
    return json.loads(text)
