"""Headless Chromium for console tests: Debian's `chromium` package driven by Playwright.

Never Playwright's own browser download (the plant network, and CI, have no internet):
`executable_path` points at the system browser that scripts/setup.sh installs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, Page, sync_playwright

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}")
                                       else None)
        if found:
            return found
    raise AssertionError("no chromium on PATH: run scripts/setup.sh (apt-get install chromium)")


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(),
                                     args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def login(page: Page, base: str, token: str) -> None:
    """Open the console, get sent to its login form, log in, land on the line page."""
    page.goto(f"{base}/console/")
    assert page.url.endswith("/console/login"), page.url
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/")
