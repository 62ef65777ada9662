"""Helpers for the decision engine tests: small configs and inspections."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from agent.configfile import parse_config
from agent.configfile.root import AgentConfig
from agent.decision.engine import DecisionEngine
from agent.types import Finding, Inspection, ModelInfo, StageTimings

MODEL = ModelInfo(name="defect-cnn", version="1.2.0", sha256="ab" * 32,
                  provider="CPUExecutionProvider")
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
LINE, ST = "l1", "st1"
TRIGGER_SIGNALS = {"trigger": "coil:10", "part_id": "hr:20", "busy": "coil:11", "done": "coil:12",
                   "result": "hr:21"}
COMMAND_SIGNALS = {"stop_request": "coil:0", "reject": "coil:1", "alarm": "coil:2"}


def model_dir(base: Path) -> Path:
    (base / "model").mkdir(exist_ok=True)
    (base / "model" / "model.onnx").write_bytes(b"x")
    return base


def rule(cls: str = "scratch", **kw: Any) -> dict[str, Any]:
    return {"class": cls, "defect_code": kw.pop("defect_code", 101), **kw}


def config(base: Path, rules: list[dict[str, Any]] | None = None, plc: bool = True,
           extra_stations: dict[str, dict[str, Any]] | None = None,
           **station: Any) -> AgentConfig:
    """A one-station config (l1/st1 on cam1) with the given rules and station keys."""
    st: dict[str, Any] = {"camera": "cam1", "model": "m1",
                          "rules": rules if rules is not None else [rule()], **station}
    if plc:
        st["plc"] = "p1"
        st.setdefault("signals", dict(COMMAND_SIGNALS))
    if st.get("mode") == "triggered":
        st.setdefault("signals", {})
        st["signals"] = {**TRIGGER_SIGNALS, **st["signals"]}
    doc = {
        "site": "plant", "agent_id": "box1", "state_dir": "state",
        "cameras": {"cam1": {"type": "synthetic", "seed": 1}},
        "models": {"m1": {"path": "model"}},
        "plcs": {"p1": {"type": "modbus", "host": "127.0.0.1", "port": 5020}},
        "lines": {LINE: {"stations": {ST: st, **(extra_stations or {})}}},
    }
    return parse_config(yaml.safe_dump(doc, sort_keys=False), "t.yaml", model_dir(base), {}).config


def engine(cfg: AgentConfig) -> DecisionEngine:
    """An engine with deterministic ids (e1, e2, ...) and wall clock (T0 + 1 s per call)."""
    ids = (f"e{i}" for i in itertools.count(1))
    ticks = (T0 + timedelta(seconds=i) for i in itertools.count())
    return DecisionEngine(cfg, ids=lambda: next(ids), wall=lambda: next(ticks))


def insp(seq: int, *findings: Finding | tuple[str, float], now: float | None = None,
         shape: tuple[int, int] = (100, 200), error: str | None = None,
         part_id: str | None = None, timings: StageTimings | None = None) -> Inspection:
    """An inspection of frame `seq` captured at `now` (default: seq seconds)."""
    fs = tuple(f if isinstance(f, Finding) else Finding(f[0], f[1]) for f in findings)
    t = float(seq) if now is None else now
    return Inspection(camera_id="cam1", frame_seq=seq, t_capture=t, wall_time=T0, model=MODEL,
                      findings=fs, timings=timings or StageTimings(), frame_shape=shape,
                      part_id=part_id, error=error)
