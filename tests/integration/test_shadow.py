"""Shadow mode and the signed promote / rollback commands, below the daemon: a real
candidate session on real synthetic frames; CPU to spare decides, skips are counted;
disagreements are saved with both outputs; the command schema carries `model`."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.capture.synthetic_scene import ConveyorScene
from agent.config.lifecycle import ShadowConfig
from agent.config.models import ModelConfig
from agent.config.station import DefectRule
from agent.inference.session import load_model
from agent.protocols.mqtt.commands import OperatorAction, evaluate
from agent.runtime.shadow import ShadowRunner
from agent.types import Frame
from tests.support.lifecycle_models import BUNDLED, always_model
from tests.unit.test_operator_commands import NOW, POLICY, TOPIC, cmd

RULES = [DefectRule.model_validate({"class": c, "min_score": 0.6, "defect_code": i + 1})
         for i, c in enumerate(("scratch", "spot", "crack", "dent"))]


def frames(n: int) -> list[Frame]:
    scene = ConveyorScene(seed=3, width=320, height=240, schedule=[None])
    return [Frame(scene.next_frame().image, "cam", i, time.monotonic(), datetime.now(UTC))
            for i in range(n)]


def run_shadow(tmp_path: Path, busy: float, n: int = 20) -> ShadowRunner:
    prod = load_model("prod", ModelConfig(path=str(BUNDLED)), tmp_path)
    cand = load_model("cand", ModelConfig(path=str(always_model(tmp_path / "c", "crack"))),
                      tmp_path)
    shadow = ShadowRunner("L/S", cand, lambda: RULES, lambda: busy,
                          ShadowConfig(max_busy=0.7, save_disagreements=5), tmp_path / "ev")
    shadow.start()
    try:
        for f in frames(n):
            insp = prod.infer(f)
            t = time.perf_counter()
            shadow.offer(insp)
            assert time.perf_counter() - t < 0.005  # the loop never waits on the shadow
            time.sleep(0.04)  # a paced camera: the shadow has time for each frame
        time.sleep(0.3)
    finally:
        shadow.stop()
    return shadow


def test_shadow_counts_flips_and_keeps_the_latest_disagreements(tmp_path: Path) -> None:
    s = run_shadow(tmp_path, busy=0.1).stats.snapshot()
    assert s["compared"] + s["skipped_total"] == s["offered"] == 20  # every frame accounted
    assert s["compared"] >= 8 and s["agreement"] == 0.0 and s["ng_rate"] == 1.0
    assert s["flips_ok_to_ng"] == {"crack": s["compared"]} and s["flips_ng_to_ok"] == {}
    assert s["cpu_ms_per_frame"] > 0 and s["p99_ms"] is not None
    saved = sorted((tmp_path / "ev").glob("*.json"))
    assert len(saved) == 5 and s["disagreements_saved"] == s["compared"] - s["errors"]  # pruned
    doc = json.loads(saved[-1].read_text())
    assert doc["production"]["verdict"] == "OK" and doc["shadow"]["classes"] == ["crack"]
    assert doc["shadow"]["model"]["sha256"] != doc["production"]["model"]["sha256"]
    assert (tmp_path / "ev" / doc["image"]).is_file()


def test_shadow_skips_and_counts_frames_while_production_is_busy(tmp_path: Path) -> None:
    s = run_shadow(tmp_path, busy=0.95).stats.snapshot()
    assert s["compared"] == 0 and s["skipped"].get("production_busy", 0) >= 18
    assert s["offered"] == 20 and s["skipped_total"] == 20


def test_promote_and_rollback_are_signed_station_commands() -> None:
    out = evaluate(cmd(command="promote", model="v2"), POLICY, TOPIC, NOW + timedelta(seconds=1))
    assert out.accepted and out.command is not None
    assert out.command.action is OperatorAction.PROMOTE and out.command.model == "v2"
    assert evaluate(cmd(command="rollback"), POLICY, TOPIC, NOW).accepted
    no_station = evaluate(cmd(command="promote", station=None), POLICY, TOPIC, NOW)
    assert not no_station.accepted and "needs line and station" in no_station.reason
    forged = json.loads(cmd(command="promote", model="v2"))
    forged["model"] = "evil"  # changed after signing
    out = evaluate(json.dumps(forged).encode(), POLICY, TOPIC, NOW)
    assert not out.accepted and out.code == "unauthenticated"
