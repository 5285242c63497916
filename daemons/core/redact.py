"""Keep secrets inside the process: URLs are shown and stored only with their secrets masked.

An operator puts an API key in a publisher URL (`https://user:${PW}@host/ingest?key=${KEY}`);
the URL then travels into error messages, logs, `mdfctl status`, the outbox's last error and
dead-letter reasons. Which query values are secret cannot be known, so every one is masked,
as is the password (or the lone user name, which some services use as a token) of the
userinfo. Text we do not build ourselves (a library's exception message) is scrubbed of every
secret value instead, in the forms a URL may carry it (raw and percent-encoded).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "***"
MIN_SCRUBBED = 4


def _userinfo(url: str) -> tuple[str | None, str | None, str]:
    """(user, password, host[:port]) of the URL's authority, as written."""
    netloc = urlsplit(url).netloc
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return None, None, netloc
    user, colon, password = userinfo.partition(":")
    return user, password if colon else None, host


def url_secrets(url: str) -> list[str]:
    """The values `redact_url` masks: userinfo credentials and every query value."""
    user, password, _ = _userinfo(url)
    found = [password] if password is not None else [user] if user else []
    for pair in urlsplit(url).query.split("&"):
        _, _, value = pair.partition("=")
        found.append(value)
    return [s for s in found if s]


def redact_url(url: str) -> str:
    """`http://user:***@host/path?key=***`: where the records go, without what opens the door."""
    parts = urlsplit(url)
    user, password, host = _userinfo(url)
    if password is not None:
        netloc = f"{user}:{MASK}@{host}"
    elif user is not None:
        netloc = f"{MASK}@{host}"
    else:
        netloc = host
    query = "&".join(
        f"{name}={MASK}" if eq else name
        for name, eq, _ in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class Scrubber:
    """Replaces every known secret value in a text with the mask."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = set()
        for secret in secrets:
            if len(secret) >= MIN_SCRUBBED:
                forms.update({secret, unquote(secret), quote(secret, safe=""), quote(secret)})
        # Longest first, so a secret containing another is masked whole.
        self._forms = sorted((f for f in forms if len(f) >= MIN_SCRUBBED), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, MASK)
        return text
