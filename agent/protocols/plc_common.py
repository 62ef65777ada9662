"""Settings every PLC target shares: heartbeat, status bits, reconnect, command deadline."""

from __future__ import annotations

from pydantic import Field

from agent.config.base import Strict


class HeartbeatConfig(Strict):
    counter: str | None = Field(None, description="Address / node of the heartbeat counter (agent -> PLC).")
    status: str | None = Field(None, description="Address / node of the status bits word: bit0 healthy (the counter advances), bit1 camera ok, bit2 model ok, bit3 degraded, bit4 paused by an operator.")
    interval_ms: int = Field(500, ge=20, le=60000, description="Heartbeat period; the counter advances only while every station mapped to this PLC inspects (none paused, cameras streaming changing pictures) and the PLC accepts the writes.")


class PlcCommon(Strict):
    timeout_ms: int = Field(200, ge=5, le=60000, description="Per-request timeout.")
    reconnect_initial_ms: int = Field(100, ge=10, description="First reconnect delay; doubles with jitter up to reconnect_max_ms.")
    reconnect_max_ms: int = Field(5000, ge=50, description="Cap of the reconnect backoff.")
    heartbeat: HeartbeatConfig = Field(default_factory=HeartbeatConfig, description="Heartbeat and status bits.")
    reset: str | None = Field(None, description="Address / node the PLC sets when an operator resets a latched stop (polled).")
