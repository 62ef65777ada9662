"""The root configuration model and the plugin unions."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from agent.capture.genicam.config import GenICamCameraConfig
from agent.capture.sources.folder_source import FolderCameraConfig
from agent.capture.sources.opencv_source import OpenCVCameraConfig
from agent.capture.sources.synthetic_source import SyntheticCameraConfig
from agent.config.base import Strict
from agent.config.station import LineConfig, StationConfig
from agent.evidence.config import EvidenceConfig
from agent.sinks.file import FileSinkConfig
from agent.sinks.http import HttpSinkConfig
from agent.sinks.modbus import ModbusPlcConfig
from agent.sinks.mqtt import MqttSinkConfig
from agent.sinks.mqtt_plc import MqttPlcConfig
from agent.sinks.opcua import OpcUaPlcConfig
from agent.sinks.sparkplug import SparkplugSinkConfig
from agent.web.config import ConsoleConfig

CameraConfig = Annotated[
    OpenCVCameraConfig | FolderCameraConfig | SyntheticCameraConfig | GenICamCameraConfig,
    Field(discriminator="type")
]
PlcConfig = Annotated[
    ModbusPlcConfig | OpcUaPlcConfig | MqttPlcConfig, Field(discriminator="type")
]
SinkConfig = Annotated[
    MqttSinkConfig | HttpSinkConfig | FileSinkConfig | SparkplugSinkConfig,
    Field(discriminator="type"),
]

PROVIDERS = (
    "TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider",
    "QNNExecutionProvider", "ROCMExecutionProvider", "MIGraphXExecutionProvider",
    "VitisAIExecutionProvider", "RknpuExecutionProvider", "CoreMLExecutionProvider",
    "DmlExecutionProvider", "CPUExecutionProvider",
)
ProviderName = Literal[
    "TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider",
    "QNNExecutionProvider", "ROCMExecutionProvider", "MIGraphXExecutionProvider",
    "VitisAIExecutionProvider", "RknpuExecutionProvider", "CoreMLExecutionProvider",
    "DmlExecutionProvider", "CPUExecutionProvider",
]


def _cpu_only() -> list[ProviderName | ProviderConfig]:
    return ["CPUExecutionProvider"]


class ProviderConfig(Strict):
    name: ProviderName = Field(description="onnxruntime execution provider name.")
    options: dict[str, str | int | float | bool] = Field(default_factory=dict, description="Provider options, e.g. trt_engine_cache_path, trt_fp16_enable, device_id, device_type, cache_dir.")


class ModelConfig(Strict):
    path: str = Field(description="Model folder holding model.onnx and model.yaml (relative to the config file).")
    providers: list[ProviderName | ProviderConfig] = Field(default_factory=_cpu_only, description="Execution providers in order of preference.")
    require_first: bool = Field(False, description="Refuse to start unless the first provider is active (no silent CPU fallback).")
    intra_op_threads: int = Field(1, ge=0, le=256, description="onnxruntime intra-op threads (0 = onnxruntime default).")
    inter_op_threads: int = Field(1, ge=0, le=256, description="onnxruntime inter-op threads.")
    allow_spinning: bool = Field(False, description="Let onnxruntime threads spin (faster, burns CPU that capture needs).")
    warmup_runs: int = Field(5, ge=0, le=1000, description="Runs at load and after idle (first runs are 10-20x slower).")
    rewarm_after_idle_s: float = Field(60.0, gt=0, description="Warm up again after this long without a frame.")


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    format: Literal["text", "json"] = Field("text", description="Readable text or JSON lines.")


class HealthConfig(Strict):
    listen: str = Field("127.0.0.1:9310", description="host:port of /healthz, /metrics, /status; empty string = off.")
    token: str | None = Field(None, description="Bearer token required by the health server (from secrets).")


class OutboxSettings(Strict):
    synchronous: Literal["FULL", "NORMAL"] = Field("FULL", description="SQLite synchronous: FULL fsyncs every commit (survives power loss); NORMAL may lose the last commits on power loss, never corrupts.")
    group_commit_ms: float = Field(2.0, ge=0, le=100, description="Concurrent writers share one commit window of this length.")


class AuditConfig(Strict):
    max_bytes: int = Field(10 * 1024 * 1024, ge=4096, description="Rotate the audit log after this size.")
    keep: int = Field(10, ge=1, description="Rotated audit files kept.")


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
