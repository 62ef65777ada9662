"""`edge-agent evaluate` on folders with known ground truth from the synthetic camera:
per-class agreement, confusion matrix, disagreeing images, recorded verdicts from
sidecars, a deliberately different candidate against the current model, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import yaml

from agent.capture.synthetic_scene import ConveyorScene
from tests.e2e.harness import write_config
from tests.support.lifecycle_models import BUNDLED, always_model


def synthetic_folder(folder: Path, frames: int = 120) -> dict[str, int]:
    """Frames of the synthetic conveyor, in subfolders named after their true label."""
    scene = ConveyorScene(seed=20261129, width=320, height=240, frames_per_part=8,
                          schedule=[None, "crack", None, "scratch"])
    counts: dict[str, int] = {}
    for i in range(frames):
        f = scene.next_frame()
        (folder / f.label).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f.label / f"{i:04d}.png"), f.image)
        counts[f.label] = counts.get(f.label, 0) + 1
    return counts


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", "evaluate", *args],
                          capture_output=True, text=True, timeout=120)


def report(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def test_bundled_model_against_synthetic_ground_truth(tmp_path: Path) -> None:
    counts = synthetic_folder(tmp_path / "imgs")
    out = run("--model", str(BUNDLED), "--folder", str(tmp_path / "imgs"), "--json",
              str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stderr
    r = report(tmp_path / "r.json")
    assert r["images"] == sum(counts.values())
    assert {c: f["truth"] for c, f in r["per_class"].items() if f["truth"]} == counts
    assert sum(sum(row.values()) for row in r["confusion"].values()) == r["images"]
    for cls in counts:
        assert r["per_class"][cls]["recall"] >= 0.9, (cls, r["per_class"][cls])
    wrong = sum(n for t, row in r["confusion"].items() for c, n in row.items() if c != t)
    assert len(r["disagreements"]) == wrong
    assert "confusion (rows: truth, columns: candidate)" in out.stdout
    assert out.stdout.splitlines()[1].split()[:3] == ["class", "truth", "recall"]


def test_candidate_against_current_and_recorded_verdicts(tmp_path: Path) -> None:
    synthetic_folder(tmp_path / "imgs", frames=40)
    ok_images = sorted((tmp_path / "imgs" / "ok").glob("*.png"))
    for img in ok_images[:5]:  # verdicts recorded at the time, as shadow mode saves them
        img.with_suffix(".json").write_text(json.dumps(
            {"production": {"verdict": "OK", "classes": []}}))
    cfg = write_config(tmp_path, mqtt_port=1, modbus_port=1)
    crack = always_model(tmp_path / "crack", "crack")
    out = run("--model", str(crack), "--folder", str(tmp_path / "imgs"), "--against",
              "current", "--config", str(cfg), "--station", "station1", "--json",
              str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stderr
    r = report(tmp_path / "r.json")
    assert r["against"]["sha256"] == yaml.safe_load((BUNDLED / "model.yaml").read_text())["sha256"]
    assert r["per_class"]["crack"]["predicted"] == r["images"]
    assert r["per_class"]["ok"]["recorded"] == 5
    assert r["per_class"]["ok"]["agree_recorded"] == 0.0
    assert r["per_class"]["ok"]["agree_reference"] == 0.0
    assert r["per_class"]["ok"]["reference"] == len(ok_images)
    flagged = {d["image"] for d in r["disagreements"]}
    assert {str(p) for p in ok_images} <= flagged


def test_bad_input_is_named_without_traceback(tmp_path: Path) -> None:
    out = run("--model", str(BUNDLED), "--folder", str(tmp_path / "nope"))
    assert out.returncode == 2 and "--folder" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "imgs").mkdir()
    out = run("--model", str(tmp_path / "nomodel"), "--folder", str(tmp_path / "imgs"))
    assert out.returncode == 2 and "nomodel" in out.stderr and "Traceback" not in out.stderr
