"""Inbound operator commands over MQTT: schema, validation, authentication. Pure: no I/O.

A command is a JSON object on the command topic:

    {"command": "reset", "line": "L1", "station": "S1", "id": "0193...-op-17",
     "time": "2026-11-27T09:30:00Z", "client_id": "hmi-1", "kid": "2026-11", "mac": "9f2c..."}

It is accepted only if it carries a valid HMAC by a configured key (`command_auth`:
the key never travels), parses against `CommandMessage`, names an allowed client id
(when a list is configured), and its `time` is neither older than `max_age_s` nor
more than `max_future_s` ahead, and names a station for the station commands. Whether
its id was seen before is the listener's check (it keeps state). Every outcome is
returned as an `Outcome` with a reason and a short code; rejected ones also carry the
id and client id they claimed, for the audit.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from agent.protocols.mqtt.command_auth import Keyring

COMMAND_SCHEMA_VERSION = 1
MAX_COMMAND_BYTES = 4096


class OperatorAction(enum.StrEnum):
    RESET = "reset"  # reset a latched stop on a station
    PAUSE = "pause"  # stop inspecting a station (no verdicts, no stops)
    RESUME = "resume"
    REBIRTH = "rebirth"  # publish the online status / birth again
    PROMOTE = "promote"  # hot-swap the station's candidate (shadow or `model`) into production
    ROLLBACK = "rollback"  # back to the station's previous model


STATION_ACTIONS = frozenset({OperatorAction.RESET, OperatorAction.PAUSE, OperatorAction.RESUME,
                             OperatorAction.PROMOTE, OperatorAction.ROLLBACK})


class CommandMessage(BaseModel):
    """JSON payload of an inbound operator command (its JSON Schema is documented)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: OperatorAction = Field(description="reset | pause | resume | rebirth | promote | rollback.")
    line: str | None = Field(None, min_length=1, max_length=128, description="Line name.")
    station: str | None = Field(None, min_length=1, max_length=128, description="Station name.")
    model: str | None = Field(None, min_length=1, max_length=128, description="promote: the model (key under `models`) to promote; default the station's shadow model.")
    id: str = Field(min_length=1, max_length=128, description="Unique per command (e.g. a UUID): a command id is executed once, a repeated one is refused as a replay. Echoed in the result.")
    time: AwareDatetime = Field(description="When the operator issued it (ISO 8601 with zone).")
    client_id: str | None = Field(None, max_length=128, description="Who sends it.")
    kid: str | None = Field(None, max_length=64, description="Id of the key the mac was made with.")
    mac: str | None = Field(None, max_length=128, description="HMAC-SHA256, lowercase hex, over the topic and the canonical command (see README).")


@dataclass(frozen=True, slots=True)
class OperatorCommand:
    """A validated, authorised command handed to the daemon (on the asyncio loop)."""

    action: OperatorAction
    line: str | None
    station: str | None
    id: str
    client_id: str | None
    issued: datetime
    received: datetime
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    accepted: bool
    reason: str
    command: OperatorCommand | None = None
    id: str | None = None  # as claimed by the message (unauthenticated when rejected early)
    code: str = "accepted"  # short reason: malformed, unauthenticated, invalid, client, ...
    client_id: str | None = None
    action: str | None = None
    authenticated: bool = False

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

    def audit_fields(self) -> dict[str, Any]:
        """Every attempt's audit line: who claimed to send what, and why it was refused."""
        cmd = self.command
        return {"id": self.id, "client": self.client_id, "command": self.action,
                "line": cmd.line if cmd else None, "station": cmd.station if cmd else None,
                "accepted": self.accepted, "code": self.code, "reason": self.reason,
                "authenticated": self.authenticated}

    def rejected(self, code: str, reason: str) -> Outcome:
        """This outcome turned into a refusal (the listener's replay check)."""
        return replace(self, accepted=False, code=code, reason=reason, command=None)


@dataclass(frozen=True)
class CommandPolicy:
    keyring: Keyring | None = None  # None: no MAC check (only a test builds that)
    allowed_client_ids: Sequence[str] = ()
    max_age_s: float = 30.0
    max_future_s: float = 5.0


def _claimed(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)  # unauthenticated: cut, and made encodable (no lone surrogates)
    if not isinstance(value, str):
        return None
    return value[:128].encode("utf-8", "replace").decode("utf-8")


def _load(raw: bytes) -> dict[str, Any] | str:
    if len(raw) > MAX_COMMAND_BYTES:
        return f"command too large ({len(raw)} bytes > {MAX_COMMAND_BYTES})"
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return f"not JSON: {exc}"
    if not isinstance(data, dict):
        return "not a JSON object"
    return data


def _validate(doc: dict[str, Any]) -> CommandMessage | str:
    try:
        return CommandMessage.model_validate(doc)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc'])) or '-'}: {e['msg']}"
                         for e in exc.errors()[:5])
        return f"invalid command: {errs}"


def _authorise(msg: CommandMessage, policy: CommandPolicy, now: datetime) -> tuple[str, str] | None:
    if policy.allowed_client_ids and msg.client_id not in policy.allowed_client_ids:
        return "client", f"client id {msg.client_id!r} is not allowed"
    age = (now - msg.time).total_seconds()
    if age > policy.max_age_s:
        return "stale", f"command is {age:.0f} s old (max {policy.max_age_s:g} s): not executed late"
    if -age > policy.max_future_s:
        return "future", (f"command time is {-age:.1f} s in the future (max "
                          f"{policy.max_future_s:g} s): check the sender's clock")
    if msg.command in STATION_ACTIONS and not (msg.line and msg.station):
        return "invalid", f"{msg.command} needs line and station"
    return None


def evaluate(raw: bytes, policy: CommandPolicy, topic: str,
             now: datetime | None = None) -> Outcome:
    """Parse, authenticate, validate and authorise one payload received on `topic`.
    Never raises."""
    now = now or datetime.now(UTC)
    doc = _load(raw)
    if isinstance(doc, str):
        return Outcome(False, doc, code="malformed")
    claimed = Outcome(False, "", id=_claimed(doc, "id"), client_id=_claimed(doc, "client_id"),
                      action=_claimed(doc, "command"))
    if policy.keyring is not None:
        why = policy.keyring.verify(topic, doc)
        if why:
            return replace(claimed, reason=why, code="unauthenticated")
    claimed = replace(claimed, authenticated=policy.keyring is not None)
    msg = _validate(doc)
    if isinstance(msg, str):
        return replace(claimed, reason=msg, code="invalid")
    refused = _authorise(msg, policy, now)
    if refused:
        return replace(claimed, code=refused[0], reason=refused[1])
    cmd = OperatorCommand(msg.command, msg.line, msg.station, msg.id, msg.client_id,
                          msg.time, now, msg.model)
    return replace(claimed, accepted=True, reason="accepted", code="accepted", command=cmd)


def command_schema() -> dict[str, Any]:
    return CommandMessage.model_json_schema()
