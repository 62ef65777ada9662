"""The console's pages and assets: package data under agent/web/static, read once.

HTML pages are `string.Template`s ($name placeholders, values HTML-escaped here);
CSS and JS are served as they are. Nothing is fetched from the network: no CDN.
"""

from __future__ import annotations

import html
from importlib import resources
from string import Template

ASSETS = {"console.css": "text/css; charset=utf-8",
          "console.js": "text/javascript; charset=utf-8"}
PAGES = ("login.html", "line.html", "station.html", "defects.html")
HTML = "text/html; charset=utf-8"


class Pages:
    def __init__(self) -> None:
        root = resources.files("agent.web").joinpath("static")
        self.assets = {name: root.joinpath(name).read_bytes() for name in ASSETS}
        self._pages = {name: Template(root.joinpath(name).read_text("utf-8")) for name in PAGES}

    def asset(self, name: str) -> tuple[bytes, str] | None:
        if name not in ASSETS:
            return None
        return self.assets[name], ASSETS[name]

    def render(self, page: str, **values: object) -> bytes:
        safe = {k: html.escape(str(v), quote=True) for k, v in values.items()}
        return self._pages[page].safe_substitute(safe).encode()
