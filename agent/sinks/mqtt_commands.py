"""Inbound operator commands over MQTT: schema, validation, authorisation. Pure: no I/O.

A command is a JSON object on the command topic:

    {"command": "reset", "line": "L1", "station": "S1", "id": "op-17",
     "time": "2026-11-27T09:30:00Z", "client_id": "hmi-1", "secret": "..."}

It is accepted only if it parses against `CommandMessage`, names an allowed
client id (when a list is configured), carries the shared secret (when one is
configured), is not older than `max_age_s`, and names a station for the
station commands. Every outcome is returned as an `Outcome` with a reason.
"""

from __future__ import annotations

import enum
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

COMMAND_SCHEMA_VERSION = 1
MAX_COMMAND_BYTES = 4096


class OperatorAction(enum.StrEnum):
    RESET = "reset"  # reset a latched stop on a station
    PAUSE = "pause"  # stop inspecting a station (no verdicts, no stops)
    RESUME = "resume"
    REBIRTH = "rebirth"  # publish the online status / birth again


STATION_ACTIONS = frozenset({OperatorAction.RESET, OperatorAction.PAUSE, OperatorAction.RESUME})


class CommandMessage(BaseModel):
    """JSON payload of an inbound operator command (its JSON Schema is documented)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: OperatorAction = Field(description="reset | pause | resume | rebirth.")
    line: str | None = Field(None, min_length=1, max_length=128, description="Line name.")
    station: str | None = Field(None, min_length=1, max_length=128, description="Station name.")
    id: str | None = Field(None, max_length=128, description="Caller's id, echoed in the result.")
    time: AwareDatetime = Field(description="When the operator issued it (ISO 8601 with zone).")
    client_id: str | None = Field(None, max_length=128, description="Who sends it.")
    secret: str | None = Field(None, max_length=512, description="Shared secret, if configured.")


@dataclass(frozen=True, slots=True)
class OperatorCommand:
    """A validated, authorised command handed to the daemon (on the asyncio loop)."""

    action: OperatorAction
    line: str | None
    station: str | None
    id: str | None
    client_id: str | None
    issued: datetime
    received: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    accepted: bool
    reason: str
    command: OperatorCommand | None = None
    id: str | None = None

    def reply(self) -> dict[str, Any]:
        cmd = self.command
        return {
            "schema_version": COMMAND_SCHEMA_VERSION,
            "id": self.id,
            "accepted": self.accepted,
            "reason": self.reason,
            "command": str(cmd.action) if cmd else None,
            "time": datetime.now(UTC).isoformat(),
        }


@dataclass(frozen=True)
class CommandPolicy:
    allowed_client_ids: Sequence[str] = ()
    shared_secret: str | None = None
    max_age_s: float = 30.0


def _reject(reason: str, cid: str | None = None) -> Outcome:
    return Outcome(False, reason, None, cid)


def _parse(raw: bytes) -> CommandMessage | str:
    if len(raw) > MAX_COMMAND_BYTES:
        return f"command too large ({len(raw)} bytes > {MAX_COMMAND_BYTES})"
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"not JSON: {exc}"
    if not isinstance(data, dict):
        return "not a JSON object"
    try:
        return CommandMessage.model_validate(data)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc'])) or '-'}: {e['msg']}"
                         for e in exc.errors()[:5])
        return f"invalid command: {errs}"


def _authorise(msg: CommandMessage, policy: CommandPolicy, now: datetime) -> str | None:
    if policy.allowed_client_ids and msg.client_id not in policy.allowed_client_ids:
        return f"client id {msg.client_id!r} is not allowed"
    if policy.shared_secret is not None and not hmac.compare_digest(
            (msg.secret or "").encode(), policy.shared_secret.encode()):
        return "missing or wrong shared secret"
    age = (now - msg.time).total_seconds()
    if age > policy.max_age_s:
        return f"command is {age:.0f} s old (max {policy.max_age_s:g} s): not executed late"
    if age < -policy.max_age_s:
        return f"command time is {-age:.0f} s in the future: check the sender's clock"
    if msg.command in STATION_ACTIONS and not (msg.line and msg.station):
        return f"{msg.command} needs line and station"
    return None


def evaluate(raw: bytes, policy: CommandPolicy, now: datetime | None = None) -> Outcome:
    """Parse, validate and authorise one inbound command payload. Never raises."""
    now = now or datetime.now(UTC)
    msg = _parse(raw)
    if isinstance(msg, str):
        return _reject(msg)
    why = _authorise(msg, policy, now)
    if why:
        return _reject(why, msg.id)
    cmd = OperatorCommand(msg.command, msg.line, msg.station, msg.id, msg.client_id,
                          msg.time, now)
    return Outcome(True, "accepted", cmd, msg.id)


def command_schema() -> dict[str, Any]:
    return CommandMessage.model_json_schema()
