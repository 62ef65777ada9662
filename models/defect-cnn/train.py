"""Train the bundled defect classifier on synthetic conveyor images and export it to ONNX.

Run from the repository root with the training venv (torch CPU):

    PYTHONPATH=/work/main /tmp/train-venv/bin/python models/defect-cnn/train.py

Writes model.onnx, model.yaml, metrics.json and confusion.txt next to this file.
Deterministic for a given torch build: every image comes from a fixed seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import torch
import yaml
from torch import nn

from agent.capture.synthetic_scene import LABELS, ConveyorScene, render_sample

HERE = Path(__file__).resolve().parent
INPUT_H, INPUT_W = 96, 128
SCALE = 1.0 / 255.0
SAMPLE_SEED = 1  # render_sample stream seeds: SAMPLE_SEED * 1000 + chunk
SCENE_SEEDS = tuple(range(100, 108))  # ConveyorScene seeds used for training frames
# Frame sizes (width, height) and how often each is used: the camera size is configurable, the
# model sees whole frames resized, so it learns defects at several scales. 320x240 is the default.
FRAME_SIZES = ((320, 240), (160, 120), (640, 480))
FRAME_SIZE_P = (0.7, 0.15, 0.15)
SCENE_SIZES = {106: (640, 480), 107: (160, 120)}  # other scene seeds: 320x240
HELDOUT_SEED = 20261127  # never used for training
HELDOUT_AUGMENT = {"lighting_jitter": 0.3, "blur_max": 1.5, "noise_std": 8.0}
LABEL_WEIGHTS = np.array([0.3] + [0.7 / (len(LABELS) - 1)] * (len(LABELS) - 1))


def preprocess(bgr: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Exactly what model.yaml says: resize to 96x128, BGR->RGB, x/255, NCHW (no batch)."""
    small = cv2.resize(bgr, (INPUT_W, INPUT_H), interpolation=interpolation)
    rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))  # uint8 CHW; scaled in the model loop


def _augment_params(rng: np.random.Generator) -> dict[str, float]:
    return {
        "lighting_jitter": float(rng.uniform(0.0, 0.4)),
        "blur_max": float(rng.uniform(0.0, 2.0)),
        "noise_std": float(rng.uniform(0.0, 10.0)),
    }


def _sample_chunk(args: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    chunk, count = args
    rng = np.random.default_rng([SAMPLE_SEED, chunk])
    xs = np.empty((count, 3, INPUT_H, INPUT_W), dtype=np.uint8)
    ys = rng.choice(len(LABELS), size=count, p=LABEL_WEIGHTS)
    sizes = rng.choice(len(FRAME_SIZES), size=count, p=FRAME_SIZE_P)
    for i, y in enumerate(ys):
        width, height = FRAME_SIZES[sizes[i]]
        img = render_sample(rng, LABELS[y], width, height, **_augment_params(rng))
        interp = cv2.INTER_AREA if rng.random() < 0.5 else cv2.INTER_LINEAR
        xs[i] = preprocess(img, interp)
    return xs, ys.astype(np.int64)


def _scene_chunk(args: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    seed, count = args
    rng = np.random.default_rng(seed)
    width, height = SCENE_SIZES.get(seed, (320, 240))
    scene = ConveyorScene(
        seed,
        width=width,
        height=height,
        defect_rate=0.6,
        frames_per_part=int(rng.integers(4, 10)),
        **_augment_params(rng),
    )
    xs = np.empty((count, 3, INPUT_H, INPUT_W), dtype=np.uint8)
    ys = np.empty(count, dtype=np.int64)
    for i in range(count):
        frame = scene.next_frame()
        xs[i] = preprocess(frame.image, cv2.INTER_AREA if i % 2 else cv2.INTER_LINEAR)
        ys[i] = LABELS.index(frame.label)
    return xs, ys


def heldout_set(
    frames: int, width: int = 320, height: int = 240, seed: int = HELDOUT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    scene = ConveyorScene(seed, width=width, height=height, defect_rate=0.5, **HELDOUT_AUGMENT)
    out = [scene.next_frame() for _ in range(frames)]
    xs = np.stack([preprocess(f.image) for f in out])
    return xs, np.array([LABELS.index(f.label) for f in out], dtype=np.int64)


def build_dataset(samples: int, scene_frames: int) -> tuple[np.ndarray, np.ndarray]:
    chunk = 500
    sample_jobs = [(c, min(chunk, samples - c * chunk)) for c in range(-(-samples // chunk))]
    per_scene = scene_frames // len(SCENE_SEEDS)
    scene_jobs = [(s, per_scene) for s in SCENE_SEEDS]
    with multiprocessing.Pool(2) as pool:
        parts = pool.map(_sample_chunk, sample_jobs) + pool.map(_scene_chunk, scene_jobs)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DefectCNN(nn.Module):
    """Five 3x3 conv blocks (four stride 2), then global max + mean pooling and a linear head.

    Input: N x 3 x 96 x 128 float32 in [0, 1]. Output: N x len(LABELS) logits.
    """

    def __init__(self, classes: int = len(LABELS)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv(3, 24, 2), conv(24, 32, 2), conv(32, 64, 2), conv(64, 64, 1), conv(64, 128, 2)
        )
        self.head = nn.Linear(256, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        pooled = torch.cat([f.amax(dim=(2, 3)), f.mean(dim=(2, 3))], dim=1)
        return self.head(pooled)


def to_tensor(xs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(xs).float().mul_(SCALE)


def train(model: nn.Module, xs: np.ndarray, ys: np.ndarray, epochs: int, batch: int) -> None:
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * (len(xs) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    y_all = torch.from_numpy(ys)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xs), generator=gen)
        t0, total, correct = time.perf_counter(), 0.0, 0
        for b in range(len(xs) // batch):
            idx = order[b * batch : (b + 1) * batch]
            x = to_tensor(xs[idx.numpy()])
            if torch.rand(1, generator=gen).item() < 0.5:
                x = x.flip(3)
            if torch.rand(1, generator=gen).item() < 0.5:
                x = x.flip(2)
            y = y_all[idx]
            logits = model(x)
            loss = loss_fn(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        n = (len(xs) // batch) * batch
        print(
            f"epoch {epoch + 1}/{epochs} loss {total / n:.4f} acc {correct / n:.4f} "
            f"({time.perf_counter() - t0:.0f}s)",
            flush=True,
        )


def export(model: nn.Module, path: Path) -> None:
    model.eval()
    dummy = torch.zeros(1, 3, INPUT_H, INPUT_W)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )


def onnx_predict(session: ort.InferenceSession, xs: np.ndarray) -> np.ndarray:
    preds = [
        session.run(None, {"input": to_tensor(xs[i : i + 256]).numpy()})[0].argmax(1)
        for i in range(0, len(xs), 256)
    ]
    return np.concatenate(preds)


def latency_p50_ms(session: ort.InferenceSession, runs: int = 300) -> float:
    x = np.random.default_rng(0).random((1, 3, INPUT_H, INPUT_W), dtype=np.float32)
    for _ in range(20):
        session.run(None, {"input": x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        session.run(None, {"input": x})
        times.append((time.perf_counter() - t) * 1000)
    return float(np.percentile(times, 50))


def metrics_of(ys: np.ndarray, preds: np.ndarray) -> tuple[dict, np.ndarray]:
    k = len(LABELS)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (ys, preds), 1)
    recall = {
        LABELS[i]: round(float(confusion[i, i] / max(1, confusion[i].sum())), 4) for i in range(k)
    }
    accuracy = round(float(np.trace(confusion) / confusion.sum()), 4)
    return {"accuracy": accuracy, "per_class_recall": recall}, confusion


def confusion_text(confusion: np.ndarray) -> str:
    width = max(len(label) for label in LABELS) + 2
    lines = [
        "rows: true label, columns: predicted label",
        " " * width + "".join(f"{label:>{width}}" for label in LABELS),
    ]
    for i, label in enumerate(LABELS):
        lines.append(f"{label:<{width}}" + "".join(f"{v:>{width}}" for v in confusion[i]))
    return "\n".join(lines) + "\n"


def write_manifest(onnx_path: Path, metrics: dict, n_train: int, n_heldout: int) -> None:
    """model.yaml in the manifest format of the inference module (written by hand, not dumped,
    so that the layout matches the documented format line for line)."""
    q = json.dumps  # a JSON string is a valid double-quoted YAML scalar
    recall = ", ".join(f"{k}: {v}" for k, v in metrics["per_class_recall"].items())
    training = (
        f"synthetic render_sample (seed {SAMPLE_SEED}) + ConveyorScene (seeds "
        f"{SCENE_SEEDS[0]}-{SCENE_SEEDS[-1]}), {n_train} images, 320x240 (70%), 160x120 and "
        "640x480, lighting/blur/noise randomised"
    )
    heldout = (
        f"ConveyorScene seed {HELDOUT_SEED}, 320x240, defect_rate 0.5, "
        + ", ".join(f"{k} {v}" for k, v in HELDOUT_AUGMENT.items())
        + f", {n_heldout} frames"
    )
    text = f"""name: defect-cnn
version: "1.0.0"
sha256: {hashlib.sha256(onnx_path.read_bytes()).hexdigest()}
task: classification
input:
  name: input
  layout: NCHW
  size: [{INPUT_H}, {INPUT_W}]
  color: RGB
  resize: resize
  scale: {SCALE!r}
  mean: [0.0, 0.0, 0.0]
  std: [1.0, 1.0, 1.0]
labels: [{", ".join(LABELS)}]
output:
  activation: softmax
provenance:
  training_data: {q(training)}
  heldout: {q(heldout)}
  metrics: {{accuracy: {metrics["accuracy"]}, per_class_recall: {{{recall}}}}}
  made_by: "models/defect-cnn/train.py"
"""
    assert yaml.safe_load(text)["sha256"] == hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    (HERE / "model.yaml").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=14000, help="render_sample images")
    parser.add_argument("--scene-frames", type=int, default=4000, help="ConveyorScene frames")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--heldout", type=int, default=2000, help="held-out frames")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    xs, ys = build_dataset(args.samples, args.scene_frames)
    print(
        f"dataset {xs.shape} in {time.perf_counter() - t0:.0f}s; class counts "
        f"{np.bincount(ys, minlength=len(LABELS)).tolist()}",
        flush=True,
    )
    model = DefectCNN()
    t1 = time.perf_counter()
    train(model, xs, ys, args.epochs, args.batch)
    train_s = time.perf_counter() - t1
    onnx_path = HERE / "model.onnx"
    export(model, onnx_path)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    hx, hy = heldout_set(args.heldout)
    metrics, confusion = metrics_of(hy, onnx_predict(session, hx))
    other_sizes = {}
    for width, height in ((160, 120), (640, 480)):
        ox, oy = heldout_set(args.heldout // 4, width, height, HELDOUT_SEED + width)
        other_sizes[f"{width}x{height}"] = metrics_of(oy, onnx_predict(session, ox))[0]
    metrics.update(
        {
            "heldout_frames": int(len(hy)),
            "heldout_frame_size": "320x240",
            "heldout_other_frame_sizes": {
                "frames": args.heldout // 4,
                "seeds": "HELDOUT_SEED + width",
                **other_sizes,
            },
            "heldout_class_counts": dict(
                zip(LABELS, np.bincount(hy, minlength=len(LABELS)).tolist(), strict=True)
            ),
            "train_images": int(len(ys)),
            "epochs": args.epochs,
            "train_seconds": round(train_s, 1),
            "total_seconds": round(time.perf_counter() - t0, 1),
            "onnx_bytes": onnx_path.stat().st_size,
            "ort_cpu_p50_ms_batch1": round(latency_p50_ms(session), 3),
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
        }
    )
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (HERE / "confusion.txt").write_text(confusion_text(confusion))
    write_manifest(onnx_path, metrics, len(ys), len(hy))
    print(json.dumps(metrics, indent=2))
    print(confusion_text(confusion))


if __name__ == "__main__":
    main()
