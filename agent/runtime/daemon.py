"""What the runtime's operator commands and reload act on: the running daemon (the app),
as a Protocol, so that nothing in the runtime imports the composition root. A reload
replaces `cfg` and sets `reload_error`; the rest is read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agent.audit import AuditWriter
    from agent.configfile import AgentConfig, LoadedConfig
    from agent.decision.engine import DecisionEngine
    from agent.pipeline.flow import StationPipeline
    from agent.pipeline.records import RecordRouter
    from agent.pipeline.station import StationRuntime
    from agent.protocols.base import Sink
    from agent.runtime.health_wiring import HealthWiring
    from agent.runtime.model_lifecycle import ModelLifecycle


class Daemon(Protocol):
    cfg: AgentConfig
    reload_error: str | None
    loaded: LoadedConfig
    stations: dict[str, StationRuntime]
    engine: DecisionEngine
    pipeline: StationPipeline
    lifecycle: ModelLifecycle
    router: RecordRouter
    sinks: dict[str, Sink]
    audit: AuditWriter
    health: HealthWiring

    def birth(self) -> dict[str, Any]: ...
