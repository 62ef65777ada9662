"""The demo's live terminal view: per station fps, frame age, inference p50/p99,
verdicts, defects, PLC state, outbox depth and sink states (rich)."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from agent.app import Agent


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def station_rows(agent: Agent) -> list[dict[str, Any]]:
    rows = []
    for key, rt in agent.stations.items():
        cam = rt.camera.stats()
        recent = list(rt.monitor.recent)
        ages = [r[0] for r in recent]
        infer = [r[1] for r in recent]
        counts = agent.pipeline.tally.verdict_counts[key]
        last = agent.pipeline.tally.last_defect.get(key)
        view = agent.engine.station_state(rt.line, rt.name)
        rows.append({
            "station": key, "camera": f"{cam.state.value} {cam.fps:.1f} fps",
            "age_p50": _pct(ages, 50), "infer_p50": _pct(infer, 50), "infer_p99": _pct(infer, 99),
            "ok": counts["OK"], "ng": counts["NG"], "unknown": counts["UNKNOWN"],
            "dropped": rt.slot.dropped + rt.worker.stats().dropped_late,
            "last_defect": f"{last.defect_class} ({last.defect_code})" if last else "-",
            "latched": bool(getattr(view, "latched", False)),
        })
    return rows


def render(agent: Agent, plc_line: str, note: str) -> Group:
    st = Table(title="stations", expand=True)
    for col in ("station", "camera", "frame age p50", "infer p50/p99", "OK", "NG", "UNKNOWN",
                "dropped", "last defect", "stop latched"):
        st.add_column(col)
    for r in station_rows(agent):
        st.add_row(r["station"], r["camera"], f"{r['age_p50']:.1f} ms",
                   f"{r['infer_p50']:.2f} / {r['infer_p99']:.2f} ms", str(r["ok"]),
                   Text(str(r["ng"]), style="bold red" if r["ng"] else ""), str(r["unknown"]),
                   str(r["dropped"]), r["last_defect"],
                   Text("STOPPED", style="bold red") if r["latched"] else Text("no", style="green"))
    sinks = Table(title="MES sinks (durable outbox)", expand=True)
    for col in ("sink", "state", "queued", "sent", "dead", "oldest"):
        sinks.add_column(col)
    stats = agent.outbox.stats()
    for name, sink in agent.sinks.items():
        s = stats.get(name)
        state = sink.state.value
        sinks.add_row(name, Text(state, style="green" if state == "connected" else "bold yellow"),
                      str(s.depth if s else 0), str(s.sent if s else 0), str(s.dead if s else 0),
                      f"{s.oldest_age_s:.0f} s" if s and s.oldest_age_s else "-")
    plcs = Table(title="PLC", expand=True)
    plcs.add_column("link")
    plcs.add_column("state")
    for name, link in agent.plc.links.items():
        plcs.add_row(name, link.state.value)
    return Group(st, sinks, plcs, Text(f"soft PLC: {plc_line}", style="cyan"),
                 Text(note, style="dim"))


def summary(agent: Agent) -> str:
    lines = ["", "edge-agent demo summary"]
    for r in station_rows(agent):
        lines.append(f"  {r['station']}: OK {r['ok']}  NG {r['ng']}  UNKNOWN {r['unknown']}  "
                     f"dropped {r['dropped']}  inference p50 {r['infer_p50']:.2f} ms "
                     f"p99 {r['infer_p99']:.2f} ms")
    for name, s in agent.outbox.stats().items():
        lines.append(f"  sink {name}: sent {s.sent} (since the outbox was created), still "
                     f"queued {s.depth} (kept on disk), "
                     f"dead {s.dead}")
    lines.append(f"  audit log: {agent.state_dir / 'audit.jsonl'}")
    ev = getattr(agent, "evidence", None)
    if ev is not None:
        lines.append(f"  evidence: {ev.writer.stats.written} image(s) saved under {ev.store.root} "
                     f"(edge-agent evidence list --dir {ev.store.root})")
    return "\n".join(lines)
