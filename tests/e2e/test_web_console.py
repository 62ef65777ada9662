"""The web console in a real browser (headless Chromium) against the daemon on the
synthetic camera: login, the live image, the latched stop, the operator reset, and no
page or stream without a login."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import yaml

from tests.e2e.harness import Daemon, write_config
from tests.support.browser import chromium, login
from tests.support.ports import free_port

TOKEN = "console-e2e-token"
OPERATOR = "operator-e2e-secret"
KEY = "line1/station1"
# one crack part (rule: stop, k=2 of n=3) early on, then clean parts for a while
SCHEDULE: list[str | None] = [None, "crack"] + [None] * 30


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("console")
    cfg_path = write_config(tmp, mqtt_port=free_port(), modbus_port=free_port(),
                            schedule=SCHEDULE)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["health"]["token"] = TOKEN
    cfg["console"] = {"operator_reset": True, "operator_token": OPERATOR, "live_fps": 5}
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    d = Daemon(cfg_path)
    try:
        d.wait_started()
        yield d
    finally:
        d.ensure_dead()


def _fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None,
           data: bytes | None = None) -> tuple[int, dict[str, str]]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):  # type: ignore[no-untyped-def]
            return None

    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=3) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)


def test_no_page_or_stream_without_a_login(daemon: Daemon) -> None:
    base = f"http://127.0.0.1:{daemon.health_port}"
    pages = ["/console/", "/console", f"/console/station/{KEY}", "/console/defects"]
    data = ["/console/api/line", f"/console/api/station/{KEY}", f"/console/live/{KEY}.jpg",
            "/console/api/defects", "/console/api/defects/01a2275c-0606-7480-a0d5-d67430e95cef",
            "/evidence/01a2275c-0606-7480-a0d5-d67430e95cef.annotated.jpg", "/metrics", "/status"]
    forged = {"Cookie": "edge_console=9999999999.00.%s" % ("0" * 64)}
    for headers in ({}, forged, {"Authorization": "Bearer wrong"}):
        for path in pages:
            code, h = _fetch(base + path, headers=headers)
            assert (code, h.get("Location")) == (303, "/console/login"), (path, headers)
        for path in data:
            assert _fetch(base + path, headers=headers)[0] == 401, (path, headers)
        assert _fetch(base + "/console/api/reset", "POST", headers, b"station=x")[0] == 401
    # the login page and the assets are public; the bearer token opens everything else
    assert _fetch(base + "/console/login")[0] == 200
    assert _fetch(base + "/console/static/console.js")[0] == 200
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert _fetch(base + "/console/api/line", headers=bearer)[0] == 200


def _image_png(page) -> bytes:  # type: ignore[no-untyped-def]
    img = page.locator(".card img.live")
    page.wait_for_function("() => { const i = document.querySelector('.card img.live');"
                           " return i && i.complete && i.naturalWidth > 0; }", timeout=10000)
    return bytes(img.screenshot())


def test_console_in_a_browser(daemon: Daemon) -> None:
    base = f"http://127.0.0.1:{daemon.health_port}"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        # a wrong token is refused: still the login form, an error, no session cookie
        page.goto(f"{base}/console/")
        page.fill("#token", "not-the-token")
        page.click("button[type=submit]")
        assert page.locator("#error").inner_text() == "Wrong token."
        assert not page.context.cookies()
        login(page, base, TOKEN)
        cookie = page.context.cookies()[0]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        # the live image loads and changes over time
        first = _image_png(page)
        time.sleep(1.2)
        second = _image_png(page)
        assert first != second, "the live image did not change in 1.2 s"
        assert page.locator(".card .banner").inner_text() in ("OK", "NG", "UNKNOWN", "LATE")

        # the crack part latches a stop: the card shows it
        page.wait_for_selector(".card.latched", timeout=15000)
        assert page.locator(".card .latch").is_visible()
        assert page.locator("#plcs").inner_text().count("softplc") == 1
        assert "drop" in page.locator("#sinks").inner_text()

        # /metrics (with the session cookie) counts the viewer and the frames encoded
        metrics = page.request.get(f"{base}/metrics").text()
        assert "edge_agent_console_viewers 1.0" in metrics
        encoded = re.search(r"^edge_agent_console_frames_encoded_total (\S+)$", metrics, re.M)
        assert encoded is not None and float(encoded.group(1)) > 0, metrics

        # station detail: k-of-n windows and histograms from /metrics
        page.goto(f"{base}/console/station/{KEY}")
        page.wait_for_selector("#rules .window", timeout=5000)
        assert page.locator("#rules .window").count() == 4
        page.wait_for_function("() => [...document.querySelectorAll('#hists svg rect')]"
                               ".some((r) => r.getAttribute('height') > 0)", timeout=5000)

        # operator reset: no CSRF token -> refused; wrong credential -> refused; right -> reset
        no_csrf = page.request.post(f"{base}/console/api/reset",
                                    form={"station": KEY, "operator_token": OPERATOR})
        assert no_csrf.status == 403
        form = page.locator(".card .reset")
        form.locator("input").fill("wrong")
        form.locator("button").click()
        page.wait_for_function("() => document.querySelector('.card .reset span')"
                               ".textContent.includes('wrong operator credential')")
        form.locator("input").fill(OPERATOR)
        form.locator("button").click()
        page.wait_for_function("() => document.querySelector('.card .reset span')"
                               ".textContent === 'reset sent'")
    audit = daemon.audit()
    cmds = [a for a in audit if a.get("event") == "operator_command"]
    assert [(c["sink"], c["code"], c["accepted"]) for c in cmds] == [
        ("console", "csrf", False), ("console", "unauthenticated", False),
        ("console", "accepted", True)], json.dumps(cmds)
    resets = [a for a in audit if a.get("event") == "reset"]
    assert [(r["line"], r["station"], r["source"]) for r in resets] == [
        ("line1", "station1", "console:127.0.0.1")]


def test_defects_page_shows_the_scheduled_crack_with_its_image(daemon: Daemon) -> None:
    base = f"http://127.0.0.1:{daemon.health_port}"
    loaded = ("() => { const i = document.querySelector(SEL);"
              " return i && i.complete && i.naturalWidth > 0; }")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        login(page, base, TOKEN)
        page.goto(f"{base}/console/defects")
        page.wait_for_selector(".thumb", timeout=20000)
        # the thumbnail is the stored evidence, served under /evidence/ with the session cookie
        page.wait_for_function(loaded.replace("SEL", "'.thumb img'"), timeout=10000)
        page.wait_for_function("() => [...document.querySelectorAll(\"select[name=class] option\")]"
                               ".some((o) => o.value === 'crack')", timeout=10000)
        page.select_option("select[name=class]", "crack")
        page.wait_for_function("() => { const t = [...document.querySelectorAll('.thumb p')]"
                               ".filter((p, i) => i % 2 === 0);"
                               " return t.length > 0 && t.every((p) => p.textContent.includes"
                               "('crack')); }", timeout=10000)
        page.locator(".thumb").first.click()
        page.wait_for_selector("#detail[open] img.full", timeout=5000)
        page.wait_for_function(loaded.replace("SEL", "'#detail img.full'"), timeout=10000)
        text = page.locator("#detail").inner_text()
        assert '"defect_class": "crack"' in text and '"station": "station1"' in text
        assert "PLC outcome" in text and '"kind": "stop"' in text and '"status"' in text
        # a filter nothing matches: an empty grid, not an error
        page.select_option("select[name=verdict]", "NG")
        assert page.locator("#conn").inner_text() == ""
