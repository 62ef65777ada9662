"""Configuration sections every agent has: models and providers, logging, health, outbox, audit.

The root model (`AgentConfig`) is assembled from the plugin registries in
`agent.configfile.root`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.config.base import Strict

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
