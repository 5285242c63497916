"""Session cookies and CSRF tokens (`web.access.Access`): plain functions, no daemon needed."""

from __future__ import annotations

from mdfd.daemons.serve.web.access import Access


def test_a_session_is_signed_by_its_token_and_dies_with_it() -> None:
    access = Access({"operator": "op-token", "viewer": "view-token"}, session_seconds=3600)
    cookie = access.login("op-token")
    assert cookie is not None
    session = access.session(cookie)
    assert session is not None
    assert session.role == "operator"
    viewer = access.session(access.login("view-token"))
    assert viewer is not None
    assert viewer.role == "viewer"
    assert viewer.csrf != session.csrf  # bound to the session, not shared
    rotated = Access({"operator": "new-token", "viewer": "view-token"}, session_seconds=3600)
    assert rotated.session(cookie) is None
    assert access.login("op-token ") is None
    assert access.session(cookie.replace("operator", "viewer")) is None
    assert access.session("operator.99999999999.00") is None


def test_an_expired_session_is_refused() -> None:
    expired = Access({"operator": "op-token"}, session_seconds=-1)
    assert expired.session(expired.login("op-token")) is None


def test_a_session_survives_a_restart_with_the_same_token() -> None:
    cookie = Access({"operator": "op-token"}, 3600).login("op-token")
    again = Access({"operator": "op-token"}, 3600)
    session = again.session(cookie)
    assert session is not None
    assert session.csrf == Access({"operator": "op-token"}, 3600).session(cookie).csrf  # type: ignore[union-attr]
