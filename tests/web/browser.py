"""Debian's chromium driven by Playwright (never Playwright's own browser download), and the
screenshots the browser tests keep as artefacts (build/web-screenshots/)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = REPO / "build" / "web-screenshots"


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium: install Debian's `chromium` package (scripts/test does, as root)")
    pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")


def browser_context() -> Iterator[Any]:
    """A chromium browser for one test, closed after it."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
