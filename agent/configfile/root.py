"""The root configuration model: the core sections plus one union per plugin kind, built
from the registries in `agent.plugins`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ConfigDict, Field, model_validator

from agent.config.base import Strict
from agent.config.console import ConsoleConfig
from agent.config.evidence import EvidenceConfig
from agent.config.models import AuditConfig, HealthConfig, LogConfig, ModelConfig, OutboxSettings
from agent.config.station import LineConfig, StationConfig
from agent.plugins import CAMERAS, PLCS, SINKS

if TYPE_CHECKING:  # what every plugin config of a kind has (the type checker's view)
    from agent.capture.sources.camera_options import CameraOptions as CameraConfig
    from agent.protocols.base import SinkSettings as SinkConfig
    from agent.protocols.plc_common import PlcCommon as PlcConfig
else:
    CameraConfig = CAMERAS.union()
    PlcConfig = PLCS.union()
    SinkConfig = SINKS.union()


class AgentConfig(Strict):
    # top-level `x-...` keys are dropped by the loader (anchors for `<<:` merge keys)
    model_config = ConfigDict(**Strict.model_config,
                              json_schema_extra={"patternProperties": {"^x-": {}}})

    site: str = Field(description="Site (plant) name, used in topics and records.", pattern=r"^[A-Za-z0-9_.-]+$")
    agent_id: str = Field(description="This agent's id (one per edge box).", pattern=r"^[A-Za-z0-9_.-]+$")
    state_dir: str = Field("/var/lib/edge-agent", description="Outbox, audit log and certificates (relative paths are relative to the config file).")
    log: LogConfig = Field(default_factory=LogConfig, description="Logging.")
    health: HealthConfig = Field(default_factory=HealthConfig, description="Health and metrics HTTP server.")
    console: ConsoleConfig = Field(default_factory=ConsoleConfig, description="Web console (live view, defects, station detail).")
    outbox: OutboxSettings = Field(default_factory=OutboxSettings, description="Durable outbox settings.")
    audit: AuditConfig = Field(default_factory=AuditConfig, description="Audit log rotation.")
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig, description="Evidence images: the frame behind defects, UNKNOWN/late verdicts, fail-safe events, triggered results and sampled OK frames.")
    cameras: dict[str, CameraConfig] = Field(description="Cameras by name.")
    models: dict[str, ModelConfig] = Field(description="Models by name.")
    plcs: dict[str, PlcConfig] = Field(default_factory=dict, description="PLC targets by name.")
    sinks: dict[str, SinkConfig] = Field(default_factory=dict, description="MES sinks by name.")
    lines: dict[str, LineConfig] = Field(description="Production lines by name.")

    @model_validator(mode="after")
    def _camera_triggers_need_triggered_stations(self) -> AgentConfig:
        for ln, sn, st in self.stations():
            cam = self.cameras.get(st.camera)
            trigger = getattr(cam, "trigger", "free-run")
            if trigger != "free-run" and st.mode != "triggered":
                raise ValueError(
                    f"lines.{ln}.stations.{sn}: camera {st.camera!r} has trigger: {trigger} "
                    "(it takes a frame only when triggered), so the station needs "
                    "mode: triggered")
        return self

    def stations(self) -> list[tuple[str, str, StationConfig]]:
        """(line, station, StationConfig) for every station, in config order."""
        return [(ln, sn, st) for ln, line in self.lines.items() for sn, st in line.stations.items()]
