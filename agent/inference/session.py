"""load_model: model folder + config -> a warmed-up ModelRunner, or a ModelLoadError.

Steps, each failing with a message naming the model, its path and the problem:
read the manifest (or build one from the graph), check the sha256 of model.onnx,
create the onnxruntime session with the configured providers and threads, compare the
active providers with the wish list (require_first), check the manifest against the
graph (input name/size/layout, label count against the outputs of a probe run), warm up.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import onnxruntime as ort

from agent.config.models import ModelConfig
from agent.inference import providers
from agent.inference.decoders import make_decoder
from agent.inference.errors import FrameError, ModelLoadError
from agent.inference.graph import GraphMismatch, bind_input, manifest_from_graph, output_names
from agent.inference.manifest import Manifest, locate, parse_manifest, read_manifest
from agent.inference.postprocess import check_finite
from agent.inference.preprocess import Preprocessor
from agent.inference.runner import ModelRunner
from agent.types import ModelInfo

__all__ = ["ModelLoadError", "ModelRunner", "load_model", "open_model"]

log = logging.getLogger(__name__)


def load_model(name: str, cfg: ModelConfig, base_dir: Path, *,
               overrides: Mapping[str, Any] | None = None,
               clock: Callable[[], float] = time.monotonic) -> ModelRunner:
    """Load the model `cfg.path` (relative to `base_dir`) as configured under `name`."""
    base = Path(base_dir).resolve()
    return open_model(name, base / cfg.path, cfg, overrides, clock, base)


def open_model(name: str, path: Path, cfg: ModelConfig,
               overrides: Mapping[str, Any] | None = None,
               clock: Callable[[], float] = time.monotonic,
               base_dir: Path | None = None) -> ModelRunner:
    """Load a model folder (model.onnx + model.yaml) or a bare .onnx file. Relative
    provider option paths (TensorRT engine cache, OpenVINO cache_dir) resolve against
    `base_dir`, else against the current directory."""
    path = path.resolve()
    where = f"model {name!r} ({path})"
    onnx_path, manifest_path = locate(path)
    manifest = _read_manifest(where, manifest_path, overrides)
    digest = _checksum(where, onnx_path, manifest)
    plan = providers.plan(cfg, base_dir or Path.cwd())
    session = _create_session(where, onnx_path, cfg, plan)
    plan = providers.ProviderPlan(plan.wished, plan.unavailable, session.get_providers())
    _enforce_policy(name, where, cfg, plan)
    if manifest is None:
        manifest = _graph_manifest(where, session, name, overrides)
    runner = _build_runner(where, name, session, manifest, digest, plan, cfg, clock)
    _log_loaded(runner, onnx_path)
    return runner


def _read_manifest(where: str, path: Path | None,
                   overrides: Mapping[str, Any] | None) -> Manifest | None:
    if path is None:
        return None
    try:
        manifest = read_manifest(path)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{where}: {exc}") from None
    if overrides:
        data = manifest.model_dump(exclude_none=True)
        for key, value in overrides.items():
            data[key] = {**data.get(key, {}), **value} if isinstance(value, Mapping) else value
        manifest = parse_manifest(data, f"{where}: manifest with overrides")
    return manifest


def _checksum(where: str, onnx_path: Path, manifest: Manifest | None) -> str:
    try:
        data = onnx_path.read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(f"{where}: {onnx_path} does not exist (a model folder holds "
                             f"model.onnx and model.yaml)") from None
    except OSError as exc:
        raise ModelLoadError(f"{where}: cannot read {onnx_path}: {exc.strerror}") from None
    digest = hashlib.sha256(data).hexdigest()
    if manifest is not None and manifest.sha256 and manifest.sha256.lower() != digest:
        raise ModelLoadError(f"{where}: sha256 mismatch: {onnx_path.name} is {digest}, the "
                             f"manifest says {manifest.sha256.lower()} (file replaced, "
                             f"truncated or corrupt; or the manifest is stale)")
    return digest


def _create_session(where: str, onnx_path: Path, cfg: ModelConfig,
                    plan: providers.ProviderPlan) -> ort.InferenceSession:
    names, options = providers.session_providers(plan)
    try:
        return ort.InferenceSession(str(onnx_path), providers.session_options(cfg),
                                    providers=names, provider_options=options)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{where}: onnxruntime {ort.__version__} cannot load "
                             f"{onnx_path.name} (corrupt, truncated or not an ONNX model, or "
                             f"an operator this onnxruntime lacks): {first}") from None


def _enforce_policy(name: str, where: str, cfg: ModelConfig,
                    plan: providers.ProviderPlan) -> None:
    if not plan.fallback:
        return
    if cfg.require_first:
        raise ModelLoadError(f"{where}: required provider {plan.first_choice} is not active "
                             f"(active: {', '.join(plan.active)}): {providers.explain(plan)}")
    providers.log_fallback(name, plan)


def _graph_manifest(where: str, session: ort.InferenceSession, name: str,
                    overrides: Mapping[str, Any] | None) -> Manifest:
    try:
        return manifest_from_graph(session, name, overrides)
    except GraphMismatch as exc:
        raise ModelLoadError(f"{where}: no model.yaml, and {exc}") from None


def _build_runner(where: str, name: str, session: ort.InferenceSession, manifest: Manifest,
                  digest: str, plan: providers.ProviderPlan, cfg: ModelConfig,
                  clock: Callable[[], float]) -> ModelRunner:
    try:
        bound = bind_input(manifest, session)
    except GraphMismatch as exc:
        raise ModelLoadError(f"{where}: manifest disagrees with the graph: {exc}") from None
    pre = Preprocessor(manifest.input, bound.size, bound.dtype)
    names = output_names(session)
    decoder = make_decoder(manifest, names, bound.size)
    _probe(where, session, bound.name, pre, decoder, names)
    info = ModelInfo(manifest.name, manifest.version, digest, plan.active[0])
    runner = ModelRunner(name, session, manifest, bound.name, pre, decoder, info,
                         list(plan.active), plan.fallback, cfg, clock)
    runner.warmup()
    return runner


def _probe(where: str, session: ort.InferenceSession, input_name: str, pre: Preprocessor,
           decoder: Any, names: list[str] | Any) -> None:
    """One run on a blank input: the outputs must fit the manifest (e.g. the label count)."""
    try:
        outputs = session.run(None, {input_name: pre.blank()})
    except Exception as exc:
        raise ModelLoadError(f"{where}: the first run on a blank input failed: "
                             f"{type(exc).__name__}: {exc}") from None
    try:
        check_finite(outputs, names)
        decoder.check(outputs)
    except FrameError as exc:
        raise ModelLoadError(f"{where}: manifest disagrees with the graph's output: {exc}") from None


def _log_loaded(runner: ModelRunner, onnx_path: Path) -> None:
    m = runner.manifest
    log.info("model %s: loaded %s %s (%s, sha256 %s) from %s on %s (active providers: %s; "
             "input %s %s %s)", runner.name, m.name, m.version, m.task, runner.info.sha256[:12],
             onnx_path, runner.info.provider, ", ".join(runner.active_providers),
             runner.input_name, list(runner.pre.size), runner.pre.dtype)
