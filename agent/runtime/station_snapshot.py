"""Per-station telemetry for dialect sinks (Sparkplug B, Home Assistant discovery).

One plain dict, built by the health loop at each status period and handed to every sink
that has `publish_snapshot(snapshot)`:

    {"outbox_depth": {sink: depth},
     "stations": {"<line>/<station>": {ok, ng, unknown, last_verdict, last_defect_code,
                  last_defect_class, camera_state, fps, frame_age_ms, infer_p99_ms,
                  latched, plc_link}}}
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.decision.engine import DecisionEngine
    from agent.outbox.store import Outbox
    from agent.pipeline.flow import Tally
    from agent.pipeline.station import StationRuntime
    from agent.protocols.link import PlcLink


def station_snapshot(outbox: Outbox, stations: Mapping[str, StationRuntime], tally: Tally,
                     engine: DecisionEngine, links: Mapping[str, PlcLink]) -> dict[str, Any]:
    return {"outbox_depth": {name: st.depth for name, st in outbox.stats().items()},
            "stations": {key: _station(tally, engine, links, key, rt)
                         for key, rt in stations.items()}}


def _station(tally: Tally, engine: DecisionEngine, links: Mapping[str, PlcLink], key: str,
             rt: Any) -> dict[str, Any]:
    cam = rt.camera.stats()
    recent = list(rt.monitor.recent)
    counts = tally.verdict_counts.get(key, {})
    last = tally.last_defect.get(key)
    view = engine.station_state(rt.line, rt.name)
    link = links.get(rt.cfg.plc) if rt.cfg.plc else None
    return {
        "ok": counts.get("OK", 0), "ng": counts.get("NG", 0),
        "unknown": counts.get("UNKNOWN", 0),
        "last_verdict": tally.last_verdict.get(key),
        "last_defect_code": last.defect_code if last else None,
        "last_defect_class": last.defect_class if last else None,
        "camera_state": cam.state.value,
        "fps": round(cam.fps, 2),
        "frame_age_ms": round(recent[-1][0], 3) if recent else None,
        "infer_p99_ms": _p99([r[1] for r in recent]),
        "latched": bool(getattr(view, "latched", False)),
        "plc_link": link.state.value if link is not None else None,
    }


def _p99(values: list[float]) -> float | None:
    if len(values) < 2:
        return round(values[0], 3) if values else None
    return round(statistics.quantiles(values, n=100, method="inclusive")[98], 3)
