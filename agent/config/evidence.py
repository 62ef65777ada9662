"""The `evidence:` block of the config file (agent-wide)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

MIB = 1024 * 1024


class Strict(BaseModel):
    """As agent.config.base.Strict (not imported: agent.config imports this module)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MaskRect(Strict):
    """A rectangle blacked out before anything is stored or served (fractions of the frame)."""

    x1: float = Field(ge=0, le=1, description="Left edge, fraction of the frame width.")
    y1: float = Field(ge=0, le=1, description="Top edge, fraction of the frame height.")
    x2: float = Field(ge=0, le=1, description="Right edge, fraction of the frame width.")
    y2: float = Field(ge=0, le=1, description="Bottom edge, fraction of the frame height.")

    @model_validator(mode="after")
    def _ordered(self) -> MaskRect:
        if self.x2 <= self.x1 or self.y2 <= self.y1:
            raise ValueError(f"mask rectangle [{self.x1}, {self.y1}, {self.x2}, {self.y2}] "
                             "needs x1 < x2 and y1 < y2")
        return self


class EvidenceConfig(Strict):
    enabled: bool = Field(True, description="Save the frame behind defects, UNKNOWN/late verdicts, fail-safe events and triggered results under state_dir/evidence/.")
    jpeg_quality: int = Field(90, ge=10, le=100, description="JPEG quality of the stored images.")
    crops: bool = Field(True, description="Also store one crop per finding with a box.")
    annotated: bool = Field(True, description="Also store a copy with the boxes and labels drawn on it (the original is never drawn on).")
    window_frames: bool = Field(False, description="Also store the other frames of a defect's k-of-n window (kept in memory, by reference, until the window has passed).")
    sample_ok_rate: float = Field(0.0, ge=0, le=1, description="Share of OK frames stored for audits and retraining (0 = none).")
    sample_ok_every_s: float | None = Field(None, gt=0, description="Store one OK frame per station every this many seconds (on top of sample_ok_rate).")
    queue_size: int = Field(16, ge=1, le=4096, description="Frames waiting for the writer thread (held by reference: 16 full-HD frames are ~100 MB); beyond this, evidence is dropped and counted (evidence_dropped_total), never the verdict.")
    max_bytes: int = Field(1024 * MIB, ge=64 * 1024, description="Keep at most this many bytes of evidence; the oldest goes first.")
    max_age_s: float = Field(30 * 86400.0, gt=0, description="Delete evidence older than this (seconds).")
    min_free_bytes: int = Field(256 * MIB, ge=0, description="Keep at least this much free space on the evidence file system; the oldest evidence goes first.")
    public_url: str | None = Field(None, description="Base URL of the agent's health server as the MES sees it (e.g. https://edge1.plant:9310); default: http://<health.listen>.")
    mask: list[MaskRect] = Field(default_factory=list, description="Privacy: rectangles blacked out before anything is stored or served (e.g. where people appear). Off (empty) by default.")
