"""Lines -> stations: what each station inspects and how it decides and signals."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agent.config.base import Strict
from agent.config.lifecycle import ModelGuardConfig, ShadowConfig


class DefectRule(Strict):
    defect_class: str = Field(alias="class", description="Model label this rule watches, e.g. scratch.")
    min_score: float = Field(0.5, ge=0, le=1, description="Findings below this score are ignored.")
    k: int = Field(1, ge=1, description="Confirm a defect when k of the last n frames show it.")
    n: int = Field(1, ge=1, description="Window of consecutive frames for k-of-n.")
    clear_after: int = Field(3, ge=1, description="Hysteresis: the incident closes after this many clean frames.")
    cooldown_s: float = Field(0.0, ge=0, description="After an incident closes, a new one of this class opens no earlier than this.")
    action: Literal["alert", "reject", "stop"] = Field("alert", description="What a confirmed defect does.")
    defect_code: int = Field(ge=1, le=65535, description="Code the MES and PLC understand.")
    severity: Literal["minor", "major", "critical"] = Field("major", description="Severity reported with the defect.")
    roi: tuple[float, float, float, float] | None = Field(None, description="Ignore findings whose box centre is outside [x1, y1, x2, y2], as fractions of the frame.")

    @model_validator(mode="after")
    def _k_le_n(self) -> DefectRule:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must be <= n ({self.n})")
        return self


class StationSignals(Strict):
    """PLC addresses (Modbus `hr:10`, `coil:3`) or OPC UA node ids (`ns=2;s=L1.Stop`)."""

    stop_request: str | None = Field(None, description="Stop request bit (agent -> PLC, latched by the PLC).")
    reject: str | None = Field(None, description="Reject pulse bit.")
    alarm: str | None = Field(None, description="Reset-able alarm bit (fail-safe 'alert').")
    defect_code: str | None = Field(None, description="Last defect code.")
    defect_count: str | None = Field(None, description="Defect counter.")
    last_event_seq: str | None = Field(None, description="Sequence number of the last event written.")
    trigger: str | None = Field(None, description="Triggered mode: PLC -> agent trigger bit.")
    part_id: str | None = Field(None, description="Triggered mode: part id (PLC -> agent, echoed back in result_part_id).")
    busy: str | None = Field(None, description="Triggered mode: agent busy bit.")
    done: str | None = Field(None, description="Triggered mode: agent done bit.")
    result: str | None = Field(None, description="Triggered mode: 1 OK, 2 NG, 3 UNKNOWN.")
    result_code: str | None = Field(None, description="Triggered mode: defect code of the result.")
    result_part_id: str | None = Field(None, description="Triggered mode: echo of the part id.")


WRITE_SIGNALS = (
    "stop_request", "reject", "alarm", "defect_code", "defect_count", "last_event_seq",
    "busy", "done", "result", "result_code", "result_part_id",
)
TRIGGER_SIGNALS = ("trigger", "part_id", "busy", "done", "result")


class FailSafe(Strict):
    action: Literal["alert", "stop"] = Field("alert", description="When inspection is impossible (camera stalled, model failing, budget overrun): alert, or stop the line.")
    after_s: float = Field(5.0, gt=0, description="How long inspection must be impossible before the fail-safe acts.")


class TriggerTimeouts(Strict):
    frame_ms: int = Field(500, ge=1, description="Wait at most this long for a frame captured after the trigger.")
    clear_ms: int = Field(5000, ge=1, description="Wait at most this long for the PLC to clear the trigger after done.")


class DriftConfig(Strict):
    enabled: bool = Field(True, description="Compute input/output drift statistics.")
    baseline_frames: int = Field(600, ge=10, description="Frames in the baseline window (the first after start).")
    window_frames: int = Field(600, ge=10, description="Frames in the rolling comparison window.")
    psi_threshold: float = Field(0.5, gt=0, description="Population Stability Index above which a drift record is sent (consecutive conveyor frames are correlated: below ~0.3 a stable line false-alarms).")


class StationConfig(Strict):
    camera: str = Field(description="Camera name (key under `cameras`).")
    model: str = Field(description="Model name (key under `models`).")
    latency_budget_ms: float = Field(100, gt=0, le=60000, description="Capture -> verdict handed to the PLC; older frames are dropped and counted.")
    prepare_ahead: bool = Field(True, description="Continuous mode: pre-process the next frame on a second thread while the model runs on the current one. More frames/s when inference is the bottleneck; the frame inspected can then be up to one inference older than the newest (the budget is checked again when inference starts). `false`: one thread, always the newest frame; on a 2-core box with a model faster than decoding its frame (the bundled one) it also gives ~10% more frames/s (bench/bench_inference.py).")
    mode: Literal["continuous", "triggered"] = Field("continuous", description="Inspect every frame, or one frame per PLC trigger.")
    rules: list[DefectRule] = Field(default_factory=list, description="Defect rules, one per watched class.")
    plc: str | None = Field(None, description="PLC target name (key under `plcs`).")
    signals: StationSignals = Field(default_factory=StationSignals, description="This station's PLC signal addresses.")
    sinks: list[str] = Field(default_factory=list, description="MES sinks (keys under `sinks`) records of this station go to.")
    publish_inspections: bool = Field(False, description="Also send one `inspection` record per verdict (QoS 1).")
    stop_deadline_ms: int = Field(250, ge=5, le=60000, description="A stop not acknowledged by the PLC within this long is reported failed and never sent later.")
    reject_pulse_ms: int = Field(200, ge=10, description="Length of the reject pulse.")
    fail_safe: FailSafe = Field(default_factory=FailSafe, description="Policy when inspection is impossible.")
    trigger: TriggerTimeouts = Field(default_factory=TriggerTimeouts, description="Triggered-mode timeouts.")
    drift: DriftConfig = Field(default_factory=DriftConfig, description="Drift detection.")
    shadow: str | None = Field(None, description="Candidate model (key under `models`) run in shadow on the same frames after the production model, off the stop path: its verdicts never act, they are compared with production's. `edge-agent model promote` makes it the production model.")
    shadow_options: ShadowConfig = Field(default_factory=ShadowConfig, description="Shadow mode: CPU share and evidence kept.")
    model_guard: ModelGuardConfig = Field(default_factory=ModelGuardConfig, description="Guards on a newly promoted model; a trip rolls the station back by itself.")


class LineConfig(Strict):
    stations: dict[str, StationConfig] = Field(description="Stations of this line by name.")
