"""Hot swap at the worker and the checks before it, with real onnxruntime sessions: the
bundled model and models made here (another sha256, another input size, broken ones)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from agent.capture.slot import LatestFrame
from agent.config.models import ModelConfig
from agent.inference.errors import ModelLoadError
from agent.inference.session import load_model
from agent.inference.swap import load_beside
from agent.inference.worker import InferenceWorker
from agent.types import Inspection
from tests.integration.onnx_graphs import constant_model, write_model_dir
from tests.integration.test_inference_models import make_frame
from tests.support.lifecycle_models import BUNDLED, LABELS, retagged_bundled


def small_model(folder: Path) -> Path:
    """Another input size (32x32 instead of the bundled 96x128): a tensor prepared for
    one model is refused by the other."""
    logits = np.zeros((1, len(LABELS)), np.float32)
    logits[0, 0] = 5.0
    m = constant_model({"logits": logits}, input_name="input", input_shape=(1, 3, 32, 32))
    return write_model_dir(folder, m, {"name": "small", "version": "1", "labels": LABELS,
                                       "input": {"name": "input", "size": [32, 32]}})


def test_swap_between_frames_never_mixes_models(tmp_path: Path) -> None:
    """prepare_ahead: the frame prepared for the old model is prepared again for the new
    one; every frame is inspected by exactly one model, without an error, old then new."""
    from bench.make_heavy_model import write as write_heavy  # a ~5 ms model: the buffer is full

    old = load_model("old", ModelConfig(path=str(write_heavy(tmp_path / "h"))), tmp_path)
    new = load_model("new", ModelConfig(path=str(small_model(tmp_path / "s"))), tmp_path)
    slot = LatestFrame()
    got: list[Inspection] = []
    lock = threading.Lock()

    def on_result(_k: str, insp: Inspection) -> None:
        with lock:
            got.append(insp)

    worker = InferenceWorker("L/S", old, slot, 1000.0, on_result, prepare_ahead=True)
    worker.start()
    pixels = np.random.default_rng(1).integers(0, 255, (240, 320, 3), np.uint8)
    try:
        for seq in range(300):
            slot.put(make_frame(pixels, seq=seq))
            if seq == 100:
                assert worker.use(new) is old
            time.sleep(0.0005)
        time.sleep(0.3)
    finally:
        slot.close()
        worker.stop()
    shas = [i.model.sha256 for i in got]
    assert not [i.error for i in got if i.error], [i.error for i in got if i.error][:3]
    assert set(shas) == {old.info.sha256, new.info.sha256}
    first_new = shas.index(new.info.sha256)
    assert all(s == new.info.sha256 for s in shas[first_new:])  # switched once, for good
    seqs = [i.frame_seq for i in got]
    assert seqs == sorted(seqs)


def _refused(tmp_path: Path, folder: Path, **cfg: object) -> str:
    async def go() -> None:
        running = load_model("running", ModelConfig(path=str(BUNDLED)), tmp_path)
        await load_beside("cand", ModelConfig(path=str(folder), **cfg), tmp_path,  # type: ignore[arg-type]
                          running)
    with pytest.raises(ModelLoadError) as err:
        asyncio.run(go())
    return str(err.value)


def test_broken_candidates_are_refused_before_the_switch(tmp_path: Path) -> None:
    v2 = retagged_bundled(tmp_path / "v2")
    doc = yaml.safe_load((v2 / "model.yaml").read_text())
    # wrong sha256
    (v2 / "model.yaml").write_text(yaml.safe_dump({**doc, "sha256": "cd" * 32}))
    assert "sha256 mismatch" in _refused(tmp_path, v2)
    # no sha256 pinned
    (v2 / "model.yaml").write_text(yaml.safe_dump({k: v for k, v in doc.items()
                                                   if k != "sha256"}))
    assert "pins no sha256" in _refused(tmp_path, v2)
    # outputs that do not match the manifest (3 labels, 5 outputs)
    (v2 / "model.yaml").write_text(yaml.safe_dump({**doc, "labels": LABELS[:3]}))
    assert "disagrees with the graph's output" in _refused(tmp_path, v2)
    # a failing provider under require_first
    (v2 / "model.yaml").write_text(yaml.safe_dump(doc))
    why = _refused(tmp_path, v2, providers=["CUDAExecutionProvider"], require_first=True)
    assert "required provider CUDAExecutionProvider is not active" in why
    # a provider fallback while the running model is on its first choice
    why = _refused(tmp_path, v2, providers=["OpenVINOExecutionProvider", "CPUExecutionProvider"])
    assert "provider policy" in why


def test_load_beside_keeps_the_loop_free(tmp_path: Path) -> None:
    """The load runs on its own thread: the loop keeps ticking every few ms meanwhile."""
    v2 = retagged_bundled(tmp_path / "v2")

    async def go() -> tuple[float, str]:
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.002)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        t = asyncio.create_task(ticker())
        runner = await load_beside("v2", ModelConfig(path=str(v2), warmup_runs=50), tmp_path,
                                   None)
        done.set()
        await t
        return max(gaps), runner.info.sha256

    worst, sha = asyncio.run(go())
    assert sha == yaml.safe_load((v2 / "model.yaml").read_text())["sha256"]
    assert worst < 0.1, worst
