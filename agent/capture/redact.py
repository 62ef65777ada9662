"""Source descriptions safe for logs and events: URL passwords removed."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """`rtsp://user:secret@host/x` -> `rtsp://user:***@host/x`; other strings unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def scrub(text: str, secret_url: str) -> str:
    """Replace every occurrence of `secret_url` (and its password) in `text`."""
    safe = redact_url(secret_url)
    if safe == secret_url:
        return text
    text = text.replace(secret_url, safe)
    password = urlsplit(secret_url).password
    return text.replace(password, "***") if password else text
