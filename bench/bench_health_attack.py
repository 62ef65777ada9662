"""PLC command latency of the daemon with and without an attack on its health server.

The daemon runs as a process (`edge-agent run`) on the synthetic camera and the bundled
model against the soft PLC (Modbus TCP, loopback); every defective part is a reject
command. One run is left alone; in the other, 150 slowloris connections (request heads
sent byte by byte, reopened when closed) and four threads flooding `/metrics` hit the
health server, which shares the event loop with the PLC tasks. Prints, per run, the
decision -> PLC acknowledgement latency of the commands (from the audit log) and, under
attack, how many authorised-style `/healthz` requests were answered within 1 s.

    .venv/bin/python bench/bench_health_attack.py [--seconds 25]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from plc.softplc import SoftPlc  # noqa: E402
from plc.tags import load_tags  # noqa: E402
from tests.e2e.harness import Daemon, write_config  # noqa: E402
from tests.integration.test_health_flood import Attack, ask  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

RULES = [{"class": c, "min_score": 0.6, "k": 2, "n": 3, "action": "reject", "defect_code": code}
         for c, code in (("scratch", 101), ("spot", 201), ("crack", 301), ("dent", 401))]


async def run(tmp: Path, attack: bool, seconds: float) -> tuple[list[float], str]:
    tmp.mkdir(parents=True, exist_ok=True)
    plc = SoftPlc(load_tags(), modbus_port=free_port(), opcua_port=None)
    await plc.start()
    cfg = write_config(tmp, mqtt_port=free_port(), modbus_port=plc.modbus_port or 0, fps=20,
                       schedule=[None, "scratch", "spot", "crack"], rules=RULES)
    daemon = Daemon(cfg)
    note = ""
    try:
        await asyncio.to_thread(daemon.wait_started)
        if attack:
            with Attack(daemon.health_port, time.monotonic() + seconds) as a:
                await asyncio.sleep(1.0)
                codes = []
                for _ in range(int(seconds) - 2):
                    codes.append(await asyncio.to_thread(ask, daemon.health_port, "/healthz",
                                                         None, 1.0))
                    await asyncio.sleep(0.8)
            note = (f"; /healthz answered {sum(c in (200, 503) for c in codes)}/{len(codes)} "
                    f"within 1 s; slowloris connections {a.slow_opened}, /metrics flood "
                    f"{a.flood_sent} requests")
        else:
            await asyncio.sleep(seconds)
        await asyncio.to_thread(daemon.terminate)
    finally:
        daemon.ensure_dead()
        await plc.stop()
    lat = [e["latency_ms"] for e in daemon.audit()
           if e["event"] == "command_outcome" and e["latency_ms"] is not None]
    return sorted(lat), note


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=25.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for attack in (False, True):
            lat, note = await run(Path(tmp) / str(attack), attack, args.seconds)
            if not lat:
                print(f"attack={attack}: no command acknowledged{note}")
                continue
            print(f"{'under attack' if attack else 'no attack   '}: {len(lat)} commands, "
                  f"p50 {lat[len(lat) // 2]:.1f} ms, p99 {lat[int(len(lat) * 0.99)]:.1f} ms, "
                  f"max {lat[-1]:.1f} ms{note}")


if __name__ == "__main__":
    asyncio.run(main())
