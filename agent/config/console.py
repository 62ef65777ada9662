"""The web console's config model (`console:` in the agent config)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from agent.config.base import Strict


class ConsoleConfig(Strict):
    enabled: bool = Field(True, description="Serve the read-only web console (/console/) with the health token; its login sets an HttpOnly, SameSite=Strict session cookie.")
    listen: str | None = Field(None, description="host:port of the console's own listener; unset = on the health listener (health.listen).")
    live_fps: float = Field(5.0, gt=0, le=30, description="Live image rate per station (JPEG snapshots), encoded only while a viewer watches.")
    jpeg_quality: int = Field(80, ge=30, le=95, description="JPEG quality of the live image.")
    session_hours: float = Field(12.0, gt=0, le=168, description="A console login lasts this long (the cookie's Max-Age).")
    defects_shown: int = Field(60, ge=1, le=500, description="Incidents listed on the defects page (newest first).")
    operator_reset: bool = Field(False, description="Allow resetting a latched stop from the console (needs operator_token; CSRF-protected; audited like `edge-agent reset`).")
    operator_token: str | None = Field(None, description="Operator credential for the console's reset, separate from the health token (from secrets).")

    @model_validator(mode="after")
    def _operator(self) -> Self:
        if self.operator_reset and not self.operator_token:
            raise ValueError("console.operator_reset needs console.operator_token (a separate "
                             "operator credential, e.g. from secrets)")
        return self
