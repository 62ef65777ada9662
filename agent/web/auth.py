"""Console login: a signed session cookie instead of the bearer header, and CSRF tokens.

A browser cannot put `Authorization: Bearer` on a link or an <img>, so the login form
takes the health token once and answers with a cookie `edge_console=<expiry>.<nonce>.<mac>`:
HttpOnly (page scripts cannot read it), SameSite=Strict (no other site's page can make
the browser send it), Path=/ and Max-Age = `session_hours`. The MAC is HMAC-SHA256
under a key derived from the token and a random per-process salt: the cookie never
holds the token, a token change or a restart logs everyone out, and nothing is stored
per session. A form that changes state (the optional operator reset) must also carry
the CSRF token of its session (HMAC of the cookie), checked in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie

COOKIE = "edge_console"


class SessionAuth:
    def __init__(self, token: str | None, hours: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.open = token is None  # no token configured: the console is open, like /status
        self._token = (token or "").encode()
        self._key = hmac.new(self._token, secrets.token_bytes(32), hashlib.sha256).digest()
        self.max_age = int(hours * 3600)
        self._clock = clock

    def check_token(self, candidate: str) -> bool:
        return self.open or hmac.compare_digest(candidate.encode(), self._token)

    def _mac(self, msg: str) -> str:
        return hmac.new(self._key, msg.encode(), hashlib.sha256).hexdigest()

    def new_cookie(self) -> str:
        expiry = int(self._clock()) + self.max_age
        nonce = secrets.token_hex(8)
        value = f"{expiry}.{nonce}.{self._mac(f'session:{expiry}.{nonce}')}"
        return (f"{COOKIE}={value}; Max-Age={self.max_age}; Path=/; HttpOnly; "
                "SameSite=Strict")

    @staticmethod
    def clear_cookie() -> str:
        return f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"

    def session(self, headers: dict[str, str]) -> str | None:
        """The request's valid session cookie value, or None."""
        value = cookie_value(headers.get("cookie", ""))
        if value is None:
            return None
        expiry, _, rest = value.partition(".")
        nonce, _, mac = rest.partition(".")
        if not expiry.isdigit() or int(expiry) < self._clock():
            return None
        if not hmac.compare_digest(mac.encode(), self._mac(f"session:{expiry}.{nonce}").encode()):
            return None
        return value

    def authorized(self, headers: dict[str, str]) -> bool:
        """The health server's authorizer hook: a valid session cookie lets a request in."""
        return self.session(headers) is not None

    def csrf(self, session: str | None) -> str:
        return self._mac(f"csrf:{session or 'open'}")

    def csrf_ok(self, headers: dict[str, str], token: str) -> bool:
        session = self.session(headers)
        if session is None and not self.open:
            return False
        return hmac.compare_digest(token.encode(), self.csrf(session).encode())


def cookie_value(header: str) -> str | None:
    try:
        jar = SimpleCookie(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None
