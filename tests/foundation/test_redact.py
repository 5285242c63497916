"""URL redaction: what a shown URL keeps (where records go) and what it never shows."""

from __future__ import annotations

import pytest

from mdfd.daemons.core.redact import Scrubber, redact_url, url_secrets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://data.example.kr/ingest", "https://data.example.kr/ingest"),
        ("https://u:p4ss@h:8443/in?k=abcd&x=1", "https://u:***@h:8443/in?k=***&x=***"),
        ("https://t0ken-only@h/in", "https://***@h/in"),
        ("http://[::1]:80/in?flag&key=s3cret#frag", "http://[::1]:80/in?flag&key=***"),
        ("https://u:p%40ss@h/in?key=a%2Fb", "https://u:***@h/in?key=***"),
    ],
)
def test_redacted_urls_keep_the_destination_and_mask_the_secrets(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_scrubber_masks_raw_and_percent_encoded_forms_but_not_short_values() -> None:
    scrub = Scrubber(url_secrets("https://u:p%40ssword@h/in?key=k3y/value&v=1"))
    text = "refused p@ssword, p%40ssword, k3y/value, k3y%2Fvalue; HTTP 401 v=1"
    assert scrub(text) == "refused ***, ***, ***, ***; HTTP 401 v=1"
