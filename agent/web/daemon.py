"""What the console reads of, and asks of, the running daemon (the app builds it with
itself): a Protocol, so that the console never imports the composition root."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agent.capture.camera import Camera
    from agent.configfile import AgentConfig
    from agent.decision.engine import DecisionEngine
    from agent.evidence.wiring import EvidenceWiring
    from agent.health.drift import DriftMonitor
    from agent.health.metrics import Metrics
    from agent.outbox.store import Outbox
    from agent.protocols.base import Sink
    from agent.runtime.audit_writer import Audit
    from agent.runtime.model_lifecycle import ModelLifecycle
    from agent.runtime.pipeline import StationPipeline
    from agent.runtime.plc_wiring import PlcWiring
    from agent.runtime.station import StationRuntime
    from agent.web.tap import FrameTap


class Daemon(Protocol):
    @property
    def cfg(self) -> AgentConfig: ...

    @property
    def stations(self) -> Mapping[str, StationRuntime]: ...

    @property
    def cameras(self) -> Mapping[str, Camera]: ...

    @property
    def engine(self) -> DecisionEngine: ...

    @property
    def pipeline(self) -> StationPipeline: ...

    @property
    def plc(self) -> PlcWiring: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def sinks(self) -> Mapping[str, Sink]: ...

    @property
    def drift(self) -> Mapping[str, DriftMonitor]: ...

    @property
    def lifecycle(self) -> ModelLifecycle: ...

    @property
    def evidence(self) -> EvidenceWiring | None: ...

    @property
    def tap(self) -> FrameTap: ...

    @property
    def audit(self) -> Audit: ...

    @property
    def metrics(self) -> Metrics: ...

    def on_operator_command(self, cmd: Any, via: str = "mqtt") -> None: ...
