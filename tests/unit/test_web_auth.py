"""Console sessions: signed, expiring, bound to the token and the process; CSRF per session."""

from __future__ import annotations

from agent.web.auth import COOKIE, SessionAuth


def _headers(set_cookie: str) -> dict[str, str]:
    return {"cookie": set_cookie.split(";", 1)[0]}


def test_cookie_is_httponly_strict_and_never_holds_the_token() -> None:
    auth = SessionAuth("s3cret-token", hours=1)
    c = auth.new_cookie()
    assert c.startswith(f"{COOKIE}=") and "s3cret-token" not in c
    assert "HttpOnly" in c and "SameSite=Strict" in c and "Max-Age=3600" in c and "Path=/" in c
    assert auth.authorized(_headers(c))


def test_wrong_tampered_expired_or_foreign_sessions_are_refused() -> None:
    now = [1000.0]
    auth = SessionAuth("tok", hours=1, clock=lambda: now[0])
    assert auth.check_token("tok") and not auth.check_token("tok ") and not auth.check_token("")
    h = _headers(auth.new_cookie())
    expiry, nonce, mac = h["cookie"].split("=", 1)[1].split(".")
    assert not auth.authorized({"cookie": f"{COOKIE}={int(expiry) + 9999}.{nonce}.{mac}"})
    assert not auth.authorized({"cookie": f"{COOKIE}={expiry}.{nonce}.{'0' * 64}"})
    assert not auth.authorized({"cookie": "other=1"}) and not auth.authorized({})
    assert not auth.authorized({"cookie": '"; ;=='})  # garbage: no exception
    # another process (a restart), or the same token elsewhere: its cookies do not open this one
    assert not SessionAuth("tok", hours=1, clock=lambda: now[0]).authorized(h)
    now[0] += 3601
    assert not auth.authorized(h)  # expired


def test_csrf_token_belongs_to_its_session() -> None:
    auth = SessionAuth("tok", hours=1)
    h1, h2 = _headers(auth.new_cookie()), _headers(auth.new_cookie())
    s1 = auth.session(h1)
    assert auth.csrf_ok(h1, auth.csrf(s1))
    assert not auth.csrf_ok(h2, auth.csrf(s1))  # another session's token
    assert not auth.csrf_ok({}, auth.csrf(s1))  # no session: refused
    assert not auth.csrf_ok(h1, "")
