"""The Sink seam (DESIGN.md): start / send(batch) / close.

`send` returns only after the peer acknowledged every record of the batch
(PUBACK, Modbus response, Good OPC UA status, HTTP 2xx, fsync). It raises
`SinkUnavailable` (retry later) or `SinkRejected` (the peer will never take it:
dead-letter it and say why).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from agent.config.base import Strict
from agent.types import Record

if TYPE_CHECKING:
    from agent.protocols.file.evidence_files import EvidenceSource
    from agent.protocols.outbox_policy import OutboxPolicy


class SinkSettings(Strict):
    """Base of every sink config: each plugin narrows `type` and `outbox` (declared here for
    the type checker only; the fields, with their defaults, are the plugin's)."""

    if TYPE_CHECKING:
        type: str
        outbox: OutboxPolicy


class SinkError(Exception):
    """Base of the two ways a send can fail."""


class SinkUnavailable(SinkError):
    """The peer is not reachable or not ready now; the same batch may succeed later."""


class SinkRejected(SinkError):
    """The peer refused the record(s) for good (bad payload, 4xx, permission).

    `record_ids` names the records refused; empty means the whole batch.
    """

    def __init__(self, reason: str, record_ids: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.record_ids = tuple(record_ids)


class SinkState(enum.StrEnum):
    STARTING = "starting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    FAILED = "failed"  # configuration or credentials wrong: will not recover by retrying
    CLOSED = "closed"


@runtime_checkable
class Sink(Protocol):
    """A sink may also set `sends_stored_json = True`: it sends records with `wire_bytes`, so
    the forwarder leases them without decoding their payloads (`Record.payload_json`)."""

    name: str

    @property
    def state(self) -> SinkState: ...

    async def start(self) -> None: ...

    async def send(self, batch: Sequence[Record]) -> None: ...

    async def close(self) -> None: ...


# What a sink may do besides sending records: the app, the health loop and the evidence
# wiring ask `isinstance(sink, <Protocol>)`.

@runtime_checkable
class StatusPublisher(Protocol):
    """Publishes the agent's status: its identity (`set_birth`, at every connect and again on
    a rebirth command) and the health loop's `status` and `metrics` (False: not sent)."""

    def set_birth(self, birth: dict[str, Any]) -> None: ...

    async def publish_telemetry(self, kind: str, payload: dict[str, Any]) -> bool: ...


@runtime_checkable
class SnapshotPublisher(Protocol):
    """Publishes the station telemetry snapshot in its own dialect (Sparkplug B, Home
    Assistant), from the health loop."""

    async def publish_snapshot(self, snapshot: dict[str, Any]) -> None: ...


class CommandCounts(Protocol):
    accepted: int
    rejected_by: Mapping[str, int]  # by the code of the rejection


@runtime_checkable
class CommandSource(Protocol):
    """Takes operator commands: `handler` gets each accepted one, `audit(event, **fields)`
    every attempt; `commands` counts them."""

    commands: CommandCounts

    def on_command(self, handler: Callable[[Any], None],
                   audit: Callable[..., None] | None = None) -> None: ...


@runtime_checkable
class EvidenceTaker(Protocol):
    """Delivers the evidence files of its records, from the store attached at start."""

    @property
    def takes_evidence(self) -> bool: ...

    def attach_evidence(self, store: EvidenceSource) -> None: ...


@dataclass(frozen=True)
class SinkContext:
    """What a sink factory gets besides its own config section."""

    site: str
    agent_id: str
    base_dir: Path  # relative paths in the config resolve against this
    state_dir: Path


def wire_payload(record: Record) -> dict[str, Any]:
    """The JSON object every sink sends for a record: its payload plus `replayed`."""
    payload = record.payload
    if record.payload_json is not None and not payload:  # leased without decoding
        payload = json.loads(record.payload_json)
    return {**payload, "replayed": record.replayed}


def wire_bytes(record: Record) -> bytes:
    """`encode_json(wire_payload(record))`, spliced from the stored JSON when the record has it
    (same object, same member order; no decode and encode again per send)."""
    raw = record.payload_json
    if raw is None or not _spliceable(raw):
        return encode_json(wire_payload(record))
    tail = '"replayed":true}' if record.replayed else '"replayed":false}'
    return (raw[:-1] + ("," if raw != "{}" else "") + tail).encode("utf-8")


def _spliceable(raw: str) -> bool:
    """A JSON object without a `replayed` member, NaN or infinities (those take the slow path,
    where `encode_json` refuses what is not JSON and the record is rejected, as ever)."""
    return (raw[:1] == "{" and raw[-1:] == "}" and '"replayed"' not in raw
            and "NaN" not in raw and "Infinity" not in raw)


def encode_json(obj: Any) -> bytes:
    """Compact UTF-8 JSON for the wire; NaN/inf and unknown types are a ValueError
    (the sink turns it into a rejection of that record, never a crash)."""
    try:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False,
                          default=_json_default).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"payload is not JSON-serialisable: {exc}") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
