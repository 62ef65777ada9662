"""Station settings of the model lifecycle: the shadow model and the guards after a promote."""

from __future__ import annotations

from pydantic import Field

from agent.config.base import Strict


class ShadowConfig(Strict):
    max_busy: float = Field(0.7, gt=0, le=1, description="Run the shadow model on a frame only while the production worker was busy less than this share of the last 10 s (CPU to spare); other frames are skipped and counted.")
    save_disagreements: int = Field(200, ge=0, le=100000, description="Disagreements (the frame and both outputs) go to the evidence store (role shadow) when it is on; with it off, at most this many are kept under state_dir/shadow/<line>_<station>/ (older ones deleted; 0 = none).")


class ModelGuardConfig(Strict):
    window_s: float = Field(300.0, ge=0, le=86400, description="After a promote or a model swap, watch the new model this long; a guard that trips within it rolls the station back to the previous model. 0 = no automatic rollback.")
    max_errors: int = Field(3, ge=1, description="Inference errors (frames not inspected) within the window that trip the guard.")
    max_overruns: int = Field(10, ge=1, description="Frames over the station's latency budget within the window that trip the guard.")
    defect_rate_band: float = Field(0.10, ge=0, le=1, description="Trip when the new model's NG rate leaves the band shadow NG rate +/- this (absolute), once min_frames were inspected; needs shadow statistics of the same model from before the promote.")
    min_frames: int = Field(200, ge=1, description="Frames the new model must inspect before its NG rate is compared with the band.")
    on_fallback: bool = Field(True, description="Trip when the new model does not run on its first-choice provider.")
