"""Stats sources the composition root registers when it builds a component.

Each reader is looked up at scrape time (a swapped model or a worker started later
counts); `agent.health.stats_specs` says how each becomes metrics.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from agent.health.registry import StatsRegistry

if TYPE_CHECKING:
    from agent.audit import AuditLog
    from agent.decision.engine import DecisionEngine
    from agent.inference.session import ModelRunner
    from agent.outbox.forwarder import Forwarder
    from agent.outbox.store import Outbox
    from agent.pipeline.records import RecordRouter
    from agent.pipeline.station import StationRuntime


def model(stats: StatsRegistry, runners: dict[str, ModelRunner], name: str) -> None:
    stats.register("model", functools.partial(_runner_stats, runners, name), model=name)


def sink(stats: StatsRegistry, name: str, kind: str, sink: Any, fwd: Forwarder,
         ) -> None:
    """The sink's forwarder and, for sink types that count, the sink."""
    stats.register("forwarder", fwd.stats, sink=name)
    if stats.known(f"{kind}_sink") and hasattr(sink, "stats"):
        stats.register(f"{kind}_sink", sink.stats, sink=name)


def station(stats: StatsRegistry, rt: StationRuntime) -> None:
    stats.register("worker", functools.partial(_worker_stats, rt), line=rt.line, station=rt.name)
    stats.register("slot", functools.partial(_slot_stats, rt), line=rt.line, station=rt.name)


def core(stats: StatsRegistry, audit: AuditLog, engine: DecisionEngine, outbox: Outbox,
         router: RecordRouter) -> None:
    """The audit log, the decision engine, the outbox and the record router."""
    stats.register("audit", audit.stats)
    stats.register("outbox", outbox.stats)  # every sink it holds records for
    stats.register("engine", engine.stats)
    stats.register("outbox_store", outbox.store_stats)
    stats.register("router", functools.partial(_router_stats, router))


def _runner_stats(runners: dict[str, ModelRunner], name: str) -> object:
    return runners[name].stats()


def _worker_stats(rt: StationRuntime) -> object:
    return rt.worker.stats()


def _slot_stats(rt: StationRuntime) -> dict[str, int]:
    return {"dropped": rt.slot.dropped}


def _router_stats(rt: RecordRouter) -> dict[str, int]:
    return {"refused": rt.refused, "unrouted": rt.unrouted}
