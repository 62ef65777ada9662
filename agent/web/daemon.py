"""What the console reads of, and asks of, the running daemon (the app builds it with
itself): the runtime's Daemon Protocol and more, so that the console never imports the
composition root."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from agent.runtime.daemon import Daemon as RuntimeDaemon

if TYPE_CHECKING:
    from agent.capture.camera import Camera
    from agent.evidence.wiring import EvidenceWiring
    from agent.health.drift import DriftMonitor
    from agent.health.metrics import Metrics
    from agent.outbox.store import Outbox
    from agent.runtime.plc_wiring import PlcWiring
    from agent.web.tap import FrameTap


class Daemon(RuntimeDaemon, Protocol):
    cameras: dict[str, Camera]
    plc: PlcWiring
    outbox: Outbox
    drift: dict[str, DriftMonitor]
    evidence: EvidenceWiring | None
    tap: FrameTap
    metrics: Metrics

    def on_operator_command(self, cmd: Any, via: str = "mqtt") -> None: ...
