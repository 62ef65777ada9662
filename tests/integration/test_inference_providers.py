"""Provider policy on this CPU-only onnxruntime: a GPU/NPU provider wished first is
either required (refuse to start, naming what to install) or not (start on CPU with
fallback=True, logged loudly); session threads and spinning come from the config."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort
import pytest

from agent.config.models import ModelConfig, ProviderConfig
from agent.inference import providers
from agent.inference.errors import ModelLoadError
from agent.inference.session import load_model
from tests.integration.onnx_graphs import channel_mean_model, write_model_dir
from tests.integration.test_inference_models import colour_frame, make_frame, manifest


@pytest.fixture
def base(tmp_path: Path) -> Path:
    write_model_dir(tmp_path / "m", channel_mean_model(), manifest())
    return tmp_path


def test_this_machine_has_no_cuda() -> None:
    assert "CUDAExecutionProvider" not in ort.get_available_providers()


def test_required_cuda_refuses_to_start_naming_the_package(base: Path) -> None:
    cfg = ModelConfig(path="m", providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
                      require_first=True, warmup_runs=1)
    with pytest.raises(ModelLoadError) as err:
        load_model("cam1-model", cfg, base)
    msg = str(err.value)
    assert msg.startswith(f"model 'cam1-model' ({base / 'm'})")
    assert "required provider CUDAExecutionProvider is not active" in msg
    assert "active: CPUExecutionProvider" in msg
    assert "onnxruntime-gpu" in msg and "edge-agent[gpu]" in msg
    assert f"onnxruntime {ort.__version__}" in msg  # what is installed instead


def test_required_openvino_names_its_extra(base: Path) -> None:
    cfg = ModelConfig(path="m", providers=[ProviderConfig(
        name="OpenVINOExecutionProvider", options={"device_type": "NPU"})], require_first=True)
    with pytest.raises(ModelLoadError, match=r"onnxruntime-openvino.*edge-agent\[openvino\]"):
        load_model("m", cfg, base)


def test_unrequired_cuda_falls_back_to_cpu_loudly(
    base: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cfg = ModelConfig(path="m", providers=["CUDAExecutionProvider"], warmup_runs=1)
    runner = load_model("cam1-model", cfg, base)
    assert runner.fallback is True
    assert runner.active_providers == ["CPUExecutionProvider"]
    assert runner.info.provider == "CPUExecutionProvider"
    assert runner.stats().fallback is True and runner.stats().provider == "CPUExecutionProvider"
    ins = runner.infer(make_frame(colour_frame((0, 0, 255))))
    assert ins.error is None and ins.model.provider == "CPUExecutionProvider"
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
            and r.name == "agent.inference.providers"]
    assert len(loud) == 1
    assert "FALLBACK" in loud[0] and "CUDAExecutionProvider is NOT active" in loud[0]
    assert "running on CPUExecutionProvider" in loud[0] and "edge-agent[gpu]" in loud[0]


def test_provider_options_reach_the_wish_list(base: Path) -> None:
    cfg = ModelConfig(path="m", warmup_runs=1, providers=[
        ProviderConfig(name="TensorrtExecutionProvider",
                       options={"trt_engine_cache_path": "cache/trt", "trt_fp16_enable": True}),
        ProviderConfig(name="CUDAExecutionProvider", options={"device_id": 1}),
        "CPUExecutionProvider"])
    plan = providers.plan(cfg, base)
    assert [w.options for w in plan.wished] == [
        {"trt_engine_cache_path": str(base / "cache" / "trt"), "trt_fp16_enable": "true"},
        {"device_id": "1"}, {}]
    assert plan.unavailable == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    assert providers.session_providers(plan) == (["CPUExecutionProvider"], [{}])
    runner = load_model("m", cfg, base)
    assert runner.fallback and runner.active_providers == ["CPUExecutionProvider"]


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_a_provider_built_in_but_failing_to_start_is_told_apart(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fault injection: an onnxruntime that lists CUDA but cannot start it (libraries missing)
    real = ort.get_available_providers()
    monkeypatch.setattr(providers.ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", *real])
    cfg = ModelConfig(path="m", providers=["CUDAExecutionProvider"], require_first=True)
    with pytest.raises(ModelLoadError) as err:
        load_model("m", cfg, base)
    assert "built into onnxruntime but failed to start" in str(err.value)
    assert "CUDA + cuDNN 9 libraries" in str(err.value)


def test_cpu_first_is_no_fallback(base: Path) -> None:
    runner = load_model("m", ModelConfig(path="m", require_first=True, warmup_runs=1), base)
    assert not runner.fallback and runner.active_providers == ["CPUExecutionProvider"]


def test_threads_and_spinning_come_from_the_config(base: Path) -> None:
    runner = load_model("m", ModelConfig(path="m", intra_op_threads=2, inter_op_threads=1), base)
    so = runner.session.get_session_options()
    assert so.intra_op_num_threads == 2 and so.inter_op_num_threads == 1
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert so.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    spin = load_model("m", ModelConfig(path="m", allow_spinning=True), base)
    assert spin.session.get_session_options().get_session_config_entry(
        "session.intra_op.allow_spinning") == "1"
    assert runner.stats().warmups == 1  # warmed at load
