"""Per-sink outbox bounds, shared by every MES sink config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.config.base import Strict


class OutboxPolicy(Strict):
    max_bytes: int = Field(256 * 1024 * 1024, ge=4096, description="Most payload bytes held for this sink.")
    max_age_s: float = Field(7 * 24 * 3600, gt=0, description="Records older than this are evicted (counted).")
    on_full: Literal["evict_oldest", "refuse_new"] = Field("evict_oldest", description="What to do when max_bytes is reached; every eviction or refusal is counted.")
    batch_size: int = Field(50, ge=1, le=10000, description="Most records leased per send.")
    retry_initial_ms: int = Field(200, ge=10, description="First retry delay after 'unavailable'; doubles with jitter.")
    retry_cap_s: float = Field(30.0, gt=0, description="Cap of the retry backoff; a sink that comes back is drained within this plus one second.")


class MqttOutboxPolicy(OutboxPolicy):
    batch_size: int = Field(500, ge=1, le=10000, description="Most records leased per send. MQTT publishes a batch pipelined and waits once for all its PUBACKs, so large batches cost nothing in latency and keep the broker link busy.")
