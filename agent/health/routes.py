"""What the health server hands a registered route, and what the route gives back.

Other packages (the web console) add paths to the health server with `Route`s: the
server keeps its bounds (pending heads, body size, write timeout) and its bearer check;
a route only turns a `Request` into a `Response`, synchronously and without blocking.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

JSON = "application/json"
REASONS = {
    200: "OK", 303: "See Other", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 413: "Content Too Large",
    405: "Method Not Allowed", 408: "Request Timeout", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 503: "Service Unavailable",
}


log = logging.getLogger("agent.health.server")


@dataclass(frozen=True, slots=True)
class Response:
    code: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Request:
    """One request as a registered route sees it (header names in lower case)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = b""
    client: str = "?"


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str  # a path, or a prefix ending in "/"
    handler: Callable[[Request], Response]
    methods: tuple[str, ...] = ("GET", "HEAD")
    public: bool = False  # served without credentials (a login page and its assets)
    login: str | None = None  # unauthenticated: 303 to this page instead of 401

    def matches(self, path: str) -> bool:
        return path == self.prefix or (self.prefix.endswith("/") and path.startswith(self.prefix))


class HttpError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


def json_response(code: int, obj: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    body = json.dumps(obj, default=str, sort_keys=True).encode() + b"\n"
    return Response(code, body, JSON, headers)


def error_response(code: int, detail: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return json_response(code, {"error": REASONS.get(code, "error"), "detail": detail}, headers)


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """Request head -> (method, target, headers with lower-case names); HttpError(400)."""
    try:
        lines = head.decode("ascii").split("\r\n")
    except UnicodeDecodeError:
        raise HttpError(400, "request head is not ASCII") from None
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[0].isupper():
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if not version.startswith("HTTP/1.") or not target.startswith("/"):
        raise HttpError(400, "malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "malformed header line")
        headers[name.lower()] = value.strip()
    return method, target, headers


class FromDisk:
    """A prefix route's answer (an evidence image), read in a worker thread, never on the
    event loop that carries the stop path: an image can be megabytes on a slow card."""

    def __init__(self, path: str, fn: Callable[[str], tuple[int, bytes, str]]) -> None:
        self.path, self.fn = path, fn

    def read(self) -> Response:
        try:
            return Response(*self.fn(self.path))
        except Exception as exc:
            log.exception("health server: %s failed", self.path)
            return error_response(500, f"{self.path} failed: {type(exc).__name__}: {exc}")
