"""Model lifecycle on the running daemon (issue 24): promote, refusals, rollback by hand
and by a guard, SIGHUP with a changed `model:`, and a shadow model that never acts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from agent.evidence.store import EvidenceStore
from plc.softplc import SoftPlc
from tests.e2e.harness import Daemon, dropped_records, write_config
from tests.support.lifecycle_models import (
    BUNDLED,
    always_model,
    retagged_bundled,
    textured_nan_model,
)
from tests.support.mosquitto import Mosquitto

KEY = "4b1d9e0c7a2f3e5d6c8b9a0f1e2d3c4b"
BUNDLED_SHA = yaml.safe_load((BUNDLED / "model.yaml").read_text())["sha256"]


def lifecycle_config(tmp: Path, mqtt_port: int, modbus_port: int,
                     models: dict[str, Path], station: dict[str, Any],
                     schedule: list[str | None] | None = None) -> Path:
    (tmp / "cmd-key").write_text(KEY + "\n")
    path = write_config(tmp, mqtt_port=mqtt_port, modbus_port=modbus_port, fps=25,
                        schedule=schedule,
                        mqtt_extra={"commands": {"enabled": True, "key": "${file:cmd-key}"}})
    cfg = yaml.safe_load(path.read_text())
    cfg["models"].update({name: {"path": str(p)} for name, p in models.items()})
    cfg["lines"]["line1"]["stations"]["station1"].update(station)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", "model", *args, "--config",
                           str(config), "--station", "station1", "--timeout", "5"],
                          capture_output=True, text=True, timeout=60)


async def until(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def lifecycle(daemon: Daemon) -> dict[str, Any]:
    st = daemon.status() or {}
    return (st.get("model_lifecycle") or [{}])[0]


def switches(daemon: Daemon) -> list[dict[str, Any]]:
    return [a for a in daemon.audit() if a.get("event") == "model_switch" and a["ok"]]


async def test_promote_refuse_rollback_and_sighup(tmp_path: Path, mosquitto: Mosquitto,
                                                  softplc: SoftPlc) -> None:
    v2 = retagged_bundled(tmp_path / "v2")
    broken = retagged_bundled(tmp_path / "broken", "3.0.0")
    manifest = yaml.safe_load((broken / "model.yaml").read_text())
    (broken / "model.yaml").write_text(yaml.safe_dump({**manifest, "sha256": "ab" * 32}))
    cfg = lifecycle_config(tmp_path, mosquitto.port, softplc.modbus_port or 0,
                           {"v2": v2, "broken": broken}, {"shadow": "v2"},
                           schedule=[None, "crack"])
    v2_sha = yaml.safe_load((v2 / "model.yaml").read_text())["sha256"]
    daemon = Daemon(cfg)
    try:
        await asyncio.to_thread(daemon.wait_started)
        await until(lambda: (lifecycle(daemon).get("shadow") or {}).get("compared", 0) > 20,
                    30, "the shadow model compared frames")
        assert lifecycle(daemon)["shadow"]["agreement"] > 0.95  # the same network
        # a broken candidate (sha256 mismatch) is refused before the switch
        out = await asyncio.to_thread(cli, cfg, "promote", "--model", "broken")
        assert out.returncode == 1 and "NOT promoted" in out.stderr, out
        assert "sha256 mismatch" in out.stderr, out
        refused = await until(lambda: [a for a in daemon.audit() if a.get("ok") is False],
                              30, "the refusal in the audit")
        assert "sha256 mismatch" in refused[0]["error"], refused
        assert lifecycle(daemon)["sha256"] == BUNDLED_SHA
        # promote the shadow model: switched, audited with both hashes, published
        out = await asyncio.to_thread(cli, cfg, "promote")
        assert out.returncode == 0 and f"promoted: now v2 (sha256 {v2_sha[:12]}" in out.stdout, out
        await until(lambda: lifecycle(daemon).get("sha256") == v2_sha, 30, "v2 in production")
        promoted = [s for s in switches(daemon) if s.get("change") == "promoted"]
        assert promoted[0]["old_sha256"] == BUNDLED_SHA and promoted[0]["new_sha256"] == v2_sha
        rec = await until(lambda: dropped_records(tmp_path / "drop", "model"), 10,
                          "the model record in the file drop")
        assert rec[0]["event"] == "promoted" and rec[0]["new"]["sha256"] == v2_sha
        # the crack still stops the line with the new model
        await until(lambda: [d for d in dropped_records(tmp_path / "drop", "defect")
                             if d["model"]["sha256"] == v2_sha and d["action"] == "stop"],
                    20, "a crack stopped by the promoted model")
        assert softplc.state.get("line1.station1.stop_request")
        # rollback by hand
        assert (await asyncio.to_thread(cli, cfg, "rollback")).returncode == 0
        await until(lambda: lifecycle(daemon).get("sha256") == BUNDLED_SHA, 20, "rolled back")
        assert [s["source"] for s in switches(daemon) if s.get("change") == "rolled_back"] == [
            "mqtt:edge-agent-cli"]
        # SIGHUP with a changed `model:` swaps without a restart
        doc = yaml.safe_load(cfg.read_text())
        doc["lines"]["line1"]["stations"]["station1"]["model"] = "v2"
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
        os.kill(daemon.proc.pid, signal.SIGHUP)
        await until(lambda: lifecycle(daemon).get("sha256") == v2_sha, 30, "v2 after SIGHUP")
        assert [s for s in switches(daemon) if s.get("change") == "reloaded"]
        # a SIGHUP naming a broken model is refused as a whole, before any switch
        doc["lines"]["line1"]["stations"]["station1"]["model"] = "broken"
        doc["lines"]["line1"]["stations"]["station1"]["latency_budget_ms"] = 400
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
        os.kill(daemon.proc.pid, signal.SIGHUP)
        bad = await until(lambda: [a for a in daemon.audit() if a.get("event") == "config_reload"
                                   and a.get("ok") is False], 30, "the refused reload")
        assert "station line1/station1" in bad[0]["error"] and "sha256 mismatch" in bad[0]["error"]
        assert lifecycle(daemon)["sha256"] == v2_sha
        rc, _ = await asyncio.to_thread(daemon.terminate)
        assert rc == 0
    finally:
        daemon.ensure_dead()


async def test_guard_rolls_back_a_failing_model(tmp_path: Path, mosquitto: Mosquitto,
                                                softplc: SoftPlc) -> None:
    nan = textured_nan_model(tmp_path / "nan")
    cfg = lifecycle_config(tmp_path, mosquitto.port, softplc.modbus_port or 0, {"nan": nan},
                           {"model_guard": {"window_s": 60, "max_errors": 3}})
    daemon = Daemon(cfg)
    try:
        await asyncio.to_thread(daemon.wait_started)
        assert (await asyncio.to_thread(cli, cfg, "promote", "--model", "nan")).returncode == 0
        rolled = await until(lambda: [s for s in switches(daemon)
                                      if s.get("change") == "rolled_back"], 30, "a rollback")
        assert rolled[0]["source"] == "guard:errors", rolled
        assert rolled[0]["new_sha256"] == BUNDLED_SHA
        assert lifecycle(daemon)["sha256"] == BUNDLED_SHA
        alarms = await until(lambda: [a for a in dropped_records(tmp_path / "drop", "alarm")
                                      if "model rolled back" in (a.get("reason") or "")],
                             10, "the rollback alarm record")
        assert "guard:errors" in alarms[0]["reason"]
        _, metrics = daemon.get("/metrics")  # a model not loaded at start has its stats too
        assert b'edge_agent_model_errors_total{model="nan"} 3.0' in metrics, metrics[-3000:]
        assert b'edge_agent_model_rollbacks_total{line="line1",station="station1"} 1.0' in metrics
        rc, _ = await asyncio.to_thread(daemon.terminate)
        assert rc == 0
    finally:
        daemon.ensure_dead()


async def test_shadow_disagreements_counted_saved_never_acted_on(
        tmp_path: Path, mosquitto: Mosquitto, softplc: SoftPlc) -> None:
    crack = always_model(tmp_path / "crack", "crack")
    cfg = lifecycle_config(tmp_path, mosquitto.port, softplc.modbus_port or 0,
                           {"crack": crack}, {"shadow": "crack"}, schedule=[None])
    daemon = Daemon(cfg)
    try:
        await asyncio.to_thread(daemon.wait_started)
        sh = await until(lambda: (s := lifecycle(daemon).get("shadow")) and
                         s.get("flips_ok_to_ng", {}).get("crack", 0) >= 10 and s, 30,
                         "shadow flips counted")
        assert sh["agreement"] < 0.1
        await until(lambda: (lifecycle(daemon).get("shadow") or {}).get(
            "disagreements_saved", 0) >= 3, 20, "disagreements in the evidence store")
        store = EvidenceStore(tmp_path / "state" / "evidence")
        saved = [m for m in store.sidecars() if m.get("role") == "shadow"]
        assert len(saved) >= 3 and store.image_path(saved[0]["evidence"]["id"]).is_file()
        assert saved[0]["production"]["verdict"] == "OK" and saved[0]["verdict"] == "OK"
        assert saved[0]["shadow"]["classes"] == ["crack"]
        assert saved[0]["shadow"]["model"]["sha256"] != saved[0]["production"]["model"]["sha256"]
        _, metrics = daemon.get("/metrics")
        assert b'edge_agent_shadow_flips_total{class="crack",direction="ok_to_ng"' in metrics
        # the console's station page shows the comparison
        code, body = daemon.get("/console/api/station/line1/station1")
        rows = dict(json.loads(body)["lifecycle"])
        assert code == 200 and rows["shadow model"] == "crack", rows
        assert rows["shadow flips OK->NG"].startswith("crack: ")
        # its verdicts never act: no stop, no defect record
        assert not softplc.state.get("line1.station1.stop_request")
        assert not dropped_records(tmp_path / "drop", "defect")
        # the stored disagreements, evaluated offline beside the running daemon: the
        # verdicts recorded at the time (OK) and the current model agree, the candidate not
        args = [sys.executable, "-m", "agent", "evaluate", "--model", str(crack), "--evidence",
                str(tmp_path / "state" / "evidence"), "--against", "current", "--config",
                str(cfg), "--station", "station1", "--json", str(tmp_path / "r.json")]
        out = await asyncio.to_thread(subprocess.run, args, capture_output=True, text=True,
                                      timeout=60)
        assert out.returncode == 0, out.stderr
        r = yaml.safe_load((tmp_path / "r.json").read_text())
        ok = r["per_class"]["ok"]
        assert ok["recorded"] == r["images"] >= 3 and ok["agree_recorded"] == 0.0
        assert ok["agree_reference"] == 0.0 and r["per_class"]["crack"]["predicted"] == r["images"]
        rc, _ = await asyncio.to_thread(daemon.terminate)
        assert rc == 0
    finally:
        daemon.ensure_dead()


async def test_promotes_under_load_lose_no_defect(tmp_path: Path, mosquitto: Mosquitto,
                                                  softplc: SoftPlc) -> None:
    """Two promotes while a finite camera runs at 25 fps: every defective part still gets
    its defect record (within the model's error, as without a swap), every reject and stop
    is acknowledged by the PLC, and parts were judged by both models."""
    from tests.e2e.harness import truth_defect_parts

    schedule = [None, "scratch", None, "spot", None, "crack", None, "dent"]
    frames = 8 * 8 * 3
    v2 = retagged_bundled(tmp_path / "v2")
    v2_sha = yaml.safe_load((v2 / "model.yaml").read_text())["sha256"]
    rules = [{"class": c, "min_score": 0.6, "k": 2, "n": 3, "action": "reject",
              "defect_code": code} for c, code in (("scratch", 101), ("spot", 201),
                                                     ("crack", 301), ("dent", 401))]
    cfg = lifecycle_config(tmp_path, mosquitto.port, softplc.modbus_port or 0, {"v2": v2},
                           {"rules": rules}, schedule=schedule)
    doc = yaml.safe_load(cfg.read_text())
    doc["cameras"]["cam1"]["max_frames"] = frames
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    expected = truth_defect_parts(11, frames, schedule)  # before: it renders on this loop
    daemon = Daemon(cfg)
    try:
        await asyncio.to_thread(daemon.wait_started)
        first = await asyncio.to_thread(cli, cfg, "promote", "--model", "v2")
        await asyncio.sleep(2.0)  # a few defective parts for v2
        second = await asyncio.to_thread(cli, cfg, "promote", "--model", "defect")
        assert first.returncode == 0 and second.returncode == 0, (first, second)
        await until(lambda: len(dropped_records(tmp_path / "drop")) >= len(expected) - 1,
                    60, "defect records")
        await asyncio.sleep(1.0)
        outcomes = [a for a in daemon.audit() if a.get("event") == "command_outcome"]
        rc, _ = await asyncio.to_thread(daemon.terminate)
        assert rc == 0
    finally:
        daemon.ensure_dead()
    defects = dropped_records(tmp_path / "drop")
    got = sorted(d["defect_class"] for d in defects)
    assert abs(len(got) - len(expected)) <= 1, (got, sorted(expected))
    assert {d["model"]["sha256"] for d in defects} >= {v2_sha}, "no part judged by v2"
    assert outcomes and all(o.get("status") == "acked" for o in outcomes), outcomes
