"""Who gets the operator page, and what each refusal looks like (a real `mdfd serve`)."""

from __future__ import annotations

import datetime
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.daemon.harness import (
    WAIT,
    Daemon,
    environment,
    submit,
    wait_until,
    write_config,
    write_recipe,
)

from .webharness import LOGIN, OPERATOR, TOKENS, VIEWER, Browser, start, status_of, web_config


def serve_refused(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mdfd.daemons.cli.mdfd", "serve", "--config", str(config)],
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


def test_the_page_is_off_unless_configured(tmp_path: Path) -> None:
    daemon = Daemon(write_config(tmp_path), env=environment()).start()
    try:
        assert daemon.get("/status")["daemon"]["state"]
    finally:
        daemon.stop()
    assert "operator page" not in daemon.log_text()


@pytest.mark.parametrize(
    ("web", "expected"),
    [
        ({"host": "0.0.0.0", "token_env": "MDFD_WEB_TOKEN"}, "configure web.tls"),
        ({"host": "192.0.2.10", "insecure_http": True}, "set web.token_env"),
    ],
)
def test_off_loopback_needs_tls_or_opt_out_and_a_token(
    tmp_path: Path, web: dict[str, object], expected: str
) -> None:
    done = serve_refused(web_config(tmp_path, **web), **TOKENS)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr
    assert "mdf.yaml" in done.stderr
    assert "operator page" not in done.stdout


def test_an_unset_token_variable_stops_the_start(tmp_path: Path) -> None:
    done = serve_refused(web_config(tmp_path, **LOGIN), MDFD_WEB_TOKEN=OPERATOR)
    assert done.returncode == 2
    assert "web.viewer_token_env" in done.stderr
    assert "MDFD_WEB_VIEWER_TOKEN is unset or empty" in done.stderr


def test_open_on_loopback_without_tokens(tmp_path: Path) -> None:
    daemon, url = start(web_config(tmp_path))
    try:
        assert url.startswith("http://127.0.0.1:")
        browser = Browser(url)
        status, headers, page = browser.request("GET", "/")
        assert status == 200
        assert 'data-role="operator"' in page
        # No other site may frame the page and trick a click on Abort.
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "mem-mdf" in browser.get("/fragment/header")
        # Even without login, a change needs the page's CSRF token.
        status, _, text = browser.request("POST", "/act/pause", csrf=False)
        assert status == 403
        assert "CSRF" in text
        status, _, text = browser.request("POST", "/act/pause")
        assert status == 409
        assert "no run" in text.lower() or "refused" in text
    finally:
        daemon.stop()


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[Daemon, str]]:
    daemon, url = start(web_config(tmp_path, **LOGIN), **TOKENS)
    yield daemon, url
    daemon.stop()


def test_login_is_required_and_checked(guarded: tuple[Daemon, str]) -> None:
    _, url = guarded
    browser = Browser(url)
    status, headers, _ = browser.request("GET", "/")
    assert (status, headers["location"]) == (303, "/login")
    status, headers, text = browser.request("GET", "/fragment/header")
    assert status == 401
    assert headers["hx-redirect"] == "/login"
    assert "log in" in text
    assert browser.request("GET", "/events")[0] == 401
    assert browser.request("POST", "/act/abort", csrf=False)[0] == 401
    assert browser.login("wrong") == 401
    assert browser.cookies == {}
    assert browser.login(OPERATOR) == 303
    assert "mdfd_session" in browser.cookies
    assert "mem-mdf" in browser.get("/fragment/header")
    forged = Browser(url)
    forged.cookies = {"mdfd_session": browser.cookies["mdfd_session"].replace("operator", "viewer")}
    assert forged.request("GET", "/fragment/header")[0] == 401


def test_state_changes_need_csrf_and_same_origin(guarded: tuple[Daemon, str]) -> None:
    _, url = guarded
    browser = Browser(url)
    assert browser.login(OPERATOR) == 303
    status, _, text = browser.request("POST", "/act/pause", csrf=False)
    assert status == 403
    assert "CSRF" in text
    status, _, text = browser.request(
        "POST", "/act/pause", headers={"Origin": "http://evil.example"}
    )
    assert (status, text.count("cross-site")) == (403, 1)
    status, _, _ = browser.request("POST", "/act/pause", headers={"Origin": url.rstrip("/")})
    assert status == 409  # reached the daemon: nothing executes, so nothing to pause
    status, _, _ = browser.request("POST", "/login", {"token": OPERATOR}, {"Origin": "http://x"})
    assert status == 403


def test_viewer_watches_but_cannot_change(guarded: tuple[Daemon, str], tmp_path: Path) -> None:
    daemon, url = guarded
    run_id = submit(daemon.config, write_recipe(tmp_path, dwell="100 h"))
    daemon.wait_status(run_id, "running")
    viewer = Browser(url)
    assert viewer.login(VIEWER) == 303
    page = viewer.get_page()
    assert 'data-role="viewer"' in page
    header = viewer.get("/fragment/header")
    assert run_id in header
    assert "Abort" not in header
    status, _, text = viewer.request("POST", "/act/abort")
    assert status == 403
    assert "read-only" in text
    assert viewer.request("POST", "/act/pause")[0] == 403
    assert status_of(daemon, run_id) == "running"
    operator = Browser(url)
    assert operator.login(OPERATOR) == 303
    assert "Abort" in operator.get("/fragment/header")
    status, _, text = operator.request("POST", "/act/abort")
    assert status == 200, text
    assert daemon.wait_status(run_id, "aborted", "failed")["status"] in ("aborted", "failed")


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mdfd-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "web.crt", directory / "web.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_off_loopback_with_secure_cookie(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    config = web_config(tmp_path, host="0.0.0.0", tls={"cert": str(cert), "key": str(key)}, **LOGIN)
    daemon, url = start(config, **TOKENS)
    try:
        assert url.startswith("https://0.0.0.0:")
        browser = Browser(url.replace("0.0.0.0", "127.0.0.1"))
        assert browser.request("GET", "/")[0] == 303
        status, headers, _ = browser.request("POST", "/login", {"token": OPERATOR})
        assert status == 303
        assert "Secure" in headers["set-cookie"]
        assert "HttpOnly" in headers["set-cookie"]
        assert "SameSite=Strict" in headers["set-cookie"]
        plain = Browser(url.replace("https://0.0.0.0", "http://127.0.0.1"))
        with pytest.raises((ConnectionError, OSError, ssl.SSLError)):
            plain.request("GET", "/login")
    finally:
        daemon.stop()


def test_an_unreadable_certificate_is_a_located_error(tmp_path: Path) -> None:
    config = web_config(
        tmp_path,
        tls={"cert": str(tmp_path / "missing.crt"), "key": str(tmp_path / "missing.key")},
    )
    done = serve_refused(config)
    assert done.returncode == 2
    assert "web.tls" in done.stderr
    assert "missing.crt" in done.stderr


def test_a_reload_that_changes_the_page_is_refused(tmp_path: Path) -> None:
    """The page's listener and tokens are bound at start: a SIGHUP that changes them would
    have been applied in name only (the old listener serving on), so it is refused."""
    config = web_config(tmp_path)
    daemon, url = start(config)
    try:
        config.write_text(config.read_text().replace("port: 0", "port: 1"))
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "operator page settings changed" in daemon.log_text(), "refusal", daemon)
        assert "mem-mdf" in Browser(url).get("/fragment/header")
    finally:
        daemon.stop()


def test_off_loopback_plain_http_only_when_said_out_loud(tmp_path: Path) -> None:
    config = web_config(tmp_path, host="0.0.0.0", insecure_http=True, **LOGIN)
    daemon, url = start(config, **TOKENS)
    try:
        assert url.startswith("http://0.0.0.0:")
        browser = Browser(url.replace("0.0.0.0", "127.0.0.1"))
        assert browser.login(OPERATOR) == 303
        assert "operator page served without TLS" in daemon.log_text()
    finally:
        daemon.stop()
