"""The JSON behind the console's pages, read from the running agent (on the event loop).

Cheap reads only: counters, the last 300 inspection timings per station, states.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.web.daemon import Daemon
    from agent.web.live import LiveEncoder

BIT_NAMES = ("healthy", "camera_ok", "model_ok", "degraded", "paused")


def _pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 2)


def _num(x: float | None, nd: int = 1) -> float | None:
    return None if x is None or math.isnan(x) else round(x, nd)


def line_state(agent: Daemon, live: LiveEncoder | None) -> dict[str, Any]:
    return {"agent_id": agent.cfg.agent_id, "site": agent.cfg.site,
            "stations": [station_card(agent, key, live) for key in agent.stations],
            "cameras": cameras(agent), "plcs": plcs(agent), "sinks": sinks(agent)}


def station_card(agent: Daemon, key: str, live: LiveEncoder | None) -> dict[str, Any]:
    rt = agent.stations[key]
    cam = rt.camera.stats()
    infer = [r[1] for r in list(rt.monitor.recent)]
    view = agent.engine.station_state(rt.line, rt.name)
    snap = live.snapshot(key) if live is not None else None
    age = cam.last_frame_age_s
    return {
        "key": key, "line": rt.line, "station": rt.name, "camera": rt.camera.name,
        "mode": rt.cfg.mode, "state": view.state, "paused": rt.paused,
        "latched": view.latched, "latch_event_id": view.latch_event_id,
        "impossible": view.impossible_reason,
        "incidents": [{"class": i.defect_class, "code": i.defect_code, "frames": i.frames,
                       "peak": round(i.peak_score, 3)} for i in view.open_incidents],
        "fps": _num(cam.fps), "frame_age_ms": _num(None if age is None else age * 1000),
        "infer_p50_ms": _pct(infer, 50), "infer_p99_ms": _pct(infer, 99),
        "counts": dict(agent.pipeline.tally.verdict_counts.get(key, {})),
        "banner": snap.banner if snap else "-", "image_seq": snap.seq if snap else None,
        "last_defect": _last_defect(agent, key),
    }


def _last_defect(agent: Daemon, key: str) -> dict[str, Any] | None:
    v = agent.pipeline.tally.last_defect.get(key)
    if v is None:
        return None
    return {"class": v.defect_class, "code": v.defect_code, "event_id": v.event_id,
            "rule": v.rule}


def cameras(agent: Daemon) -> list[dict[str, Any]]:
    out = []
    for name, cam in agent.cameras.items():
        st = cam.stats()
        out.append({"name": name, "state": st.state.value, "fps": _num(st.fps),
                    "captured": st.captured, "dropped": st.dropped,
                    "reconnects": st.reconnects, "read_errors": st.read_errors})
    return out


def plcs(agent: Daemon) -> list[dict[str, Any]]:
    beats = {hb.link.name: hb for hb in agent.plc.heartbeats}
    health = getattr(agent, "health", None)
    out = []
    for name, link in agent.plc.links.items():
        row: dict[str, Any] = {"name": name, "state": link.state.value, "heartbeat": None}
        hb = beats.get(name)
        if hb is not None:
            st = hb.stats()
            row["heartbeat"] = {"counter": st.counter, "beats": st.beats, "held": st.held,
                                "failures": st.write_failures, "refusing": st.refusing}
            if health is not None:
                bits = health.heartbeat_bits(name)
                row["status_word"] = bits.word()
                row["bits"] = {b: bool(getattr(bits, b)) for b in BIT_NAMES}
        out.append(row)
    return out


def sinks(agent: Daemon) -> list[dict[str, Any]]:
    stats = agent.outbox.stats()
    out = []
    for name, sink in agent.sinks.items():
        ob = stats.get(name)
        out.append({"name": name, "state": sink.state.value,
                    "queued": ob.depth if ob else 0, "sent": ob.sent if ob else 0,
                    "dead": ob.dead if ob else 0})
    return out


def station_detail(agent: Daemon, key: str, live: LiveEncoder | None) -> dict[str, Any]:
    rt = agent.stations[key]
    drift = agent.drift.get(key)
    stats = {k: _num(v, 4) for k, v in drift.stats().items()} if drift is not None else {}
    return {"card": station_card(agent, key, live),
            "rules": agent.engine.rule_windows(rt.line, rt.name),
            "rule_config": [{"class": r.defect_class, "min_score": r.min_score, "k": r.k,
                             "n": r.n, "action": r.action, "code": r.defect_code}
                            for r in rt.cfg.rules],
            "drift": {"enabled": rt.cfg.drift.enabled, "stats": stats},
            "model": {"name": rt.runner.info.name, "version": rt.runner.info.version,
                      "provider": rt.runner.info.provider},
            "lifecycle": lifecycle_rows(agent, key),
            "time": time.time()}


def lifecycle_rows(agent: Daemon, key: str) -> list[tuple[str, str]]:
    """The station's model lifecycle as (what, value) rows: switches, guard, shadow figures."""
    entry = next((e for e in agent.lifecycle.status() if e["station"] == key), None)
    if entry is None:
        return []
    rows = [("sha256", str(entry["sha256"])[:16]), ("previous model", str(entry["previous"])),
            ("switches / rollbacks / refused",
             f'{entry["switches"]} / {entry["rollbacks"]} / {entry["refused"]}')]
    guard = entry.get("guard")
    if guard:
        rows.append(("guard", f'{guard["remaining_s"]} s left, {guard["frames"]} frames, '
                              f'{guard["errors"]} errors, {guard["overruns"]} overruns'))
    shadow = entry.get("shadow")
    if shadow:
        agreement = shadow.get("agreement")
        rows += [("shadow model", str(shadow["model"])),
                 ("shadow agreement", "-" if agreement is None else f"{agreement * 100:.1f} %"),
                 ("shadow compared / skipped", f'{shadow["compared"]} / {shadow["skipped_total"]}'),
                 ("shadow flips OK->NG", _flips(shadow["flips_ok_to_ng"])),
                 ("shadow flips NG->OK", _flips(shadow["flips_ng_to_ok"])),
                 ("shadow p99", "-" if shadow["p99_ms"] is None else f'{shadow["p99_ms"]:.2f} ms')]
    return rows


def _flips(by_class: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(by_class.items())) or "none"
