"""Execution-provider policy: what the config wishes for, what onnxruntime can do, what ran.

onnxruntime silently falls back to CPU when a provider cannot load. Here the wish list
is compared with the providers the session actually has: a required first choice that
is not active refuses to start, naming the pip package or library that is missing;
otherwise the fallback is logged loudly and exposed (`ProviderPlan.fallback`).
"""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass, field
from pathlib import Path

import onnxruntime as ort

from agent.config.models import ModelConfig, ProviderConfig

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
OPENVINO = "OpenVINOExecutionProvider"

# what to install for each provider (pip package / extra, native libraries)
INSTALL_HINTS: dict[str, str] = {
    "CUDAExecutionProvider": "the onnxruntime-gpu package (pip install 'edge-agent[gpu]', "
                             "replacing onnxruntime) and the CUDA + cuDNN 9 libraries its build "
                             "needs (CUDA 13 for onnxruntime-gpu 1.31; the nvidia-*-cu13 "
                             "pip packages or the system toolkit)",
    "TensorrtExecutionProvider": "the onnxruntime-gpu package (pip install 'edge-agent[gpu]', "
                                 "replacing onnxruntime) and the TensorRT 10 libraries "
                                 "(libnvinfer.so.10) next to the CUDA + cuDNN 9 "
                                 "libraries its build needs",
    "OpenVINOExecutionProvider": "the onnxruntime-openvino package (pip install "
                                 "'edge-agent[openvino]', replacing onnxruntime)",
    "QNNExecutionProvider": "the onnxruntime-qnn package (Qualcomm QNN SDK)",
    "ROCMExecutionProvider": "AMD's onnxruntime-rocm build and the ROCm libraries",
    "MIGraphXExecutionProvider": "AMD's onnxruntime-migraphx build and the MIGraphX libraries",
    "VitisAIExecutionProvider": "AMD's Ryzen AI / Vitis AI onnxruntime build",
    "RknpuExecutionProvider": "an onnxruntime built with --use_rknpu (Rockchip RKNPU driver)",
    "CoreMLExecutionProvider": "onnxruntime on macOS",
    "DmlExecutionProvider": "the onnxruntime-directml package (Windows)",
}
# provider options that name a folder or file: relative ones resolve against the config's folder
PATH_OPTIONS = frozenset({"trt_engine_cache_path", "trt_timing_cache_path", "cache_dir",
                          "trt_ep_context_file_path", "ep_context_file_path"})
RUNTIME_PACKAGES = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino",
                    "onnxruntime-qnn", "onnxruntime-directml", "onnxruntime-rocm")


@dataclass(frozen=True)
class ProviderChoice:
    name: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderPlan:
    """The wish list, what was passed to onnxruntime, and what it activated."""

    wished: list[ProviderChoice]
    unavailable: list[str]  # wished providers this onnxruntime build does not have
    active: list[str] = field(default_factory=list)

    @property
    def first_choice(self) -> str:
        return self.wished[0].name if self.wished else CPU

    @property
    def fallback(self) -> bool:
        return not self.active or self.active[0] != self.first_choice


def _option_value(v: str | int | float | bool) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _options(p: ProviderConfig, base_dir: Path | None) -> dict[str, str]:
    out = {k: _option_value(v) for k, v in p.options.items()}
    for key in PATH_OPTIONS & out.keys():
        if base_dir is not None and out[key] and not Path(out[key]).is_absolute():
            out[key] = str((base_dir / out[key]).resolve())
    return out


def wishes(cfg: ModelConfig, base_dir: Path | None = None) -> list[ProviderChoice]:
    out = []
    for p in cfg.providers:
        if isinstance(p, ProviderConfig):
            out.append(ProviderChoice(p.name, _options(p, base_dir)))
        else:
            out.append(ProviderChoice(p))
    return out


def plan(cfg: ModelConfig, base_dir: Path | None = None,
         available: list[str] | None = None) -> ProviderPlan:
    """The providers to pass to onnxruntime: the available wishes, CPU always last."""
    wished = wishes(cfg, base_dir)
    have = ort.get_available_providers() if available is None else available
    unavailable = [w.name for w in wished if w.name not in have]
    return ProviderPlan(wished, unavailable)


def session_providers(p: ProviderPlan) -> tuple[list[str], list[dict[str, str]]]:
    usable = [w for w in p.wished if w.name not in p.unavailable]
    if CPU not in [w.name for w in usable]:
        usable.append(ProviderChoice(CPU))
    return [w.name for w in usable], [w.options for w in usable]


def session_options(cfg: ModelConfig) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = cfg.intra_op_threads
    so.inter_op_num_threads = cfg.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spin = "1" if cfg.allow_spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return so


def installed_runtimes() -> list[str]:
    found = []
    for pkg in RUNTIME_PACKAGES:
        try:
            found.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def why_inactive(provider: str, compiled_in: bool) -> str:
    """Why `provider` is not running, and what to install."""
    hint = INSTALL_HINTS.get(provider, "an onnxruntime build with this provider")
    runtimes = ", ".join(installed_runtimes()) or "no onnxruntime package found"
    if compiled_in:
        return (f"{provider} is built into onnxruntime but failed to start (see onnxruntime's "
                f"log above): its native libraries are missing or do not match; it needs "
                f"{hint}")
    return (f"{provider} is not in this onnxruntime ({runtimes}; available: "
            f"{', '.join(ort.get_available_providers())}): install {hint}")


def explain(p: ProviderPlan) -> str:
    """One sentence on why the first choice is not the active provider."""
    first = p.first_choice
    if first == OPENVINO and first not in p.unavailable:
        device = p.wished[0].options.get("device_type", "CPU")
        seen = openvino_devices()
        if seen is not None and device.split(".")[0].split(":")[0] not in seen:
            return (f"{OPENVINO} device_type {device}: no such device on this machine "
                    f"(OpenVINO sees: {', '.join(seen) or 'none'}); use device_type CPU, or "
                    f"install the device's driver")
    return why_inactive(first, compiled_in=first not in p.unavailable)


def openvino_devices() -> list[str] | None:
    """The devices the OpenVINO execution provider can use (onnxruntime-openvino only)."""
    try:
        from onnxruntime.capi import _pybind_state

        return list(_pybind_state.get_available_openvino_device_ids())
    except (ImportError, AttributeError, RuntimeError):
        return None


def log_fallback(model: str, p: ProviderPlan) -> None:
    log.warning(
        "model %s: FALLBACK: first-choice provider %s is NOT active; running on %s. %s. "
        "Inference will be slower than planned and may exceed the latency budget; set "
        "require_first: true to refuse to start instead.",
        model, p.first_choice, p.active[0] if p.active else "nothing", explain(p))
