"""Screenshots of the web console for the README (docs/console-*.png); rerun at will.

Starts a real line on this machine: the soft PLC (`edge-agent plc-sim`), Mosquitto when
installed, and the daemon with two stations on synthetic cameras (a crack, a scratch and
a spot scheduled); logs into the console in headless Chromium (Debian's package, see
tests/support/browser.py) and saves the line page, a station's detail and the defects page.

    .venv/bin/python scripts/console_screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.harness import Daemon, write_config  # noqa: E402
from tests.support.browser import chromium, login  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402
from tests.support.ports import free_port, wait_port  # noqa: E402

TOKEN = "screenshot-token"


def config(tmp: Path, mqtt_port: int, modbus_port: int) -> Path:
    path = write_config(tmp, mqtt_port=mqtt_port, modbus_port=modbus_port, fps=10,
                        schedule=[None, "scratch", None, None, "crack", None, "spot", None])
    cfg = yaml.safe_load(path.read_text())
    cfg["health"]["token"] = TOKEN
    cfg["console"] = {"operator_reset": True, "operator_token": "operator-secret"}
    cam2 = dict(cfg["cameras"]["cam1"], seed=5, schedule=[None, None, "dent", None, "spot"])
    cfg["cameras"]["cam2"] = cam2
    st1 = cfg["lines"]["line1"]["stations"]["station1"]
    st1["rules"][0]["roi"] = [0.05, 0.05, 0.95, 0.95]
    cfg["lines"]["line1"]["stations"]["station2"] = {
        k: v for k, v in st1.items() if k not in ("plc", "signals")} | {
        "camera": "cam2", "sinks": ["drop"]}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def shoot(base: str, out: Path, settle_s: float) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1360, "height": 860})
        login(page, base, TOKEN)
        page.wait_for_selector(".card.latched", timeout=30000)
        time.sleep(settle_s)
        # a moment when a station shows a defective part (NG banner, red label)
        page.wait_for_function("() => [...document.querySelectorAll('.banner')]"
                               ".some((b) => b.textContent === 'NG')", timeout=30000,
                               polling=50)
        page.screenshot(path=str(out / "console-line.png"))
        page.goto(f"{base}/console/station/line1/station1")
        time.sleep(3)
        page.screenshot(path=str(out / "console-station.png"), full_page=True)
        page.goto(f"{base}/console/defects")
        page.wait_for_selector(".thumb", timeout=20000)
        page.wait_for_function("() => [...document.querySelectorAll('.thumb img')]"
                               ".every((i) => i.complete && i.naturalWidth > 0)", timeout=10000)
        page.screenshot(path=str(out / "console-defects.png"))
        if page.locator(".thumb").count():  # an incident whose reject went to the PLC
            page.select_option("select[name=class]", "scratch")
            page.wait_for_function("() => [...document.querySelectorAll('.thumb p')]"
                                   ".every((p, i) => i % 2 || p.textContent.includes('scratch'))")
            page.locator(".thumb").first.click()
            page.wait_for_function("() => { const i = document.querySelector('#detail img.full');"
                                   " return i && i.complete && i.naturalWidth > 0; }")
            page.screenshot(path=str(out / "console-defect-detail.png"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--settle", type=float, default=4.0, help="seconds on the line page")
    args = ap.parse_args()
    import subprocess

    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        modbus = free_port()
        plc = subprocess.Popen([sys.executable, "-m", "agent", "plc-sim", "--modbus-port",
                                str(modbus), "--opcua-port", "0"], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        broker = None
        try:
            try:
                broker = Mosquitto(tmp).start()
                mqtt_port = broker.port
            except (OSError, FileNotFoundError, RuntimeError):
                mqtt_port = free_port()  # no broker: the sink shows disconnected, records queue
            wait_port(modbus, 20)
            daemon = Daemon(config(tmp, mqtt_port, modbus))
            try:
                daemon.wait_started()
                shoot(f"http://127.0.0.1:{daemon.health_port}", args.out, args.settle)
            finally:
                daemon.terminate()
        finally:
            plc.terminate()
            plc.wait(10)
            if broker is not None:
                broker.stop()
    print(f"screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
