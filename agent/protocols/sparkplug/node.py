"""The edge node's Sparkplug session state, without I/O: aliases, last values, `seq`.

Builds every message the edge node publishes (NBIRTH, DBIRTH, NDATA, DDATA, DDEATH) as
serialized protobuf. `seq` is 0 in NBIRTH and goes up by one (mod 256) for every later
message of the session; NDEATH has none. Telemetry is sent by exception: a data message
carries only the metrics whose value changed since the last birth or data message.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from agent.decision import payloads as P
from agent.protocols.sparkplug.payload import (
    BDSEQ,
    DT,
    NODE_METRICS,
    REBIRTH,
    STATION_METRICS,
    AliasTable,
    MetricDef,
    Payload,
    add_metric,
    event_fields,
    flatten,
    now_ms,
)
from agent.types import Record

# record kind -> (metric folder under Events/, payload model)
EVENT_KINDS = {
    "defect": ("Defect", P.DefectPayload),
    "inspection": ("Inspection", P.InspectionPayload),
    "stop": ("Command", P.StopPayload),
    "alarm": ("Alarm", P.AlarmPayload),
    "drift": ("Drift", P.DriftPayload),
    "model": ("Model", P.ModelEventPayload),  # a station's production model changed
}
AGENT_EVENTS = "Events/Agent"  # a record without a station: its JSON, in NDATA


@cache
def kind_fields(kind: str) -> tuple[tuple[str, int], ...]:
    """Metric fields of a record kind: the payload model's fields, `evidence` (the evidence
    reference, JSON; null when the record has none) and `extra` (fields the model does not
    know, JSON)."""
    fields = event_fields(EVENT_KINDS[kind][1])  # type: ignore[arg-type]
    names = {path.split("/", 1)[0] for path, _ in fields}
    if "evidence" not in names:
        fields.append(("evidence", DT.String))
    fields.append(("extra", DT.String))
    return tuple(fields)


class EdgeNodeSession:
    def __init__(self) -> None:
        self.aliases = AliasTable()
        self.rebirth = self.aliases.define(None, REBIRTH, DT.Boolean)
        self.node_defs = [(self.aliases.define(None, name, dt), key)
                          for name, dt, key in NODE_METRICS]
        self.agent_events = self.aliases.define(None, AGENT_EVENTS, DT.String)
        self.node_values: dict[str, Any] = {}
        self.devices: dict[str, dict[str, Any]] = {}  # device id -> station snapshot
        self._sent_node: dict[str, Any] = {}
        self._sent_dev: dict[str, dict[str, Any]] = {}
        self.seq = 0

    # ---- definitions ---------------------------------------------------------------------

    def define_device(self, device: str) -> None:
        """Aliases of a device's metrics (telemetry, then events), once per device."""
        self.devices.setdefault(device, {})
        if self.aliases.scope(device):
            return
        for name, dt, _ in STATION_METRICS:
            self.aliases.define(device, name, dt)
        for kind, (folder, _) in EVENT_KINDS.items():
            for path, dt in kind_fields(kind):
                self.aliases.define(device, f"Events/{folder}/{path}", dt)

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = (self.seq + 1) % 256
        return seq

    def _payload(self, seq: int | None = None) -> Payload:
        p = Payload(timestamp=now_ms())
        p.seq = self._next_seq() if seq is None else seq
        return p

    # ---- births and deaths ---------------------------------------------------------------

    def nbirth(self, bdseq: int) -> bytes:
        """seq 0; bdSeq of the connection; every node metric with its current value."""
        p = self._payload(seq=0)
        self.seq = 1
        m = p.metrics.add(name=BDSEQ, datatype=DT.UInt64, timestamp=p.timestamp)
        m.long_value = bdseq
        add_metric(p, self.rebirth, False, True, p.timestamp)
        for d, key in self.node_defs:
            add_metric(p, d, self.node_values.get(key), True, p.timestamp)
        add_metric(p, self.agent_events, None, True, p.timestamp)
        self._sent_node = dict(self.node_values)
        return p.SerializeToString()

    def dbirth(self, device: str) -> bytes:
        self.define_device(device)
        p = self._payload()
        values = self.devices[device]
        for d in self.aliases.scope(device):
            key = _station_key(d.name)
            add_metric(p, d, values.get(key) if key else None, True, p.timestamp)
        self._sent_dev[device] = dict(values)
        return p.SerializeToString()

    def ddeath(self, device: str) -> bytes:
        self._sent_dev.pop(device, None)
        return self._payload().SerializeToString()

    # ---- data ----------------------------------------------------------------------------

    def ndata(self) -> bytes | None:
        """Changed node metrics since the last NBIRTH/NDATA, or None."""
        changed = [(d, key) for d, key in self.node_defs
                   if self.node_values.get(key) != self._sent_node.get(key)]
        if not changed:
            return None
        p = self._payload()
        for d, key in changed:
            add_metric(p, d, self.node_values.get(key), False, p.timestamp)
        self._sent_node = dict(self.node_values)
        return p.SerializeToString()

    def ddata(self, device: str) -> bytes | None:
        """Changed station metrics since the device's last DBIRTH/DDATA, or None."""
        values, sent = self.devices[device], self._sent_dev.get(device, {})
        changed = [(d, key) for name, _, key in STATION_METRICS
                   if values.get(key) != sent.get(key)
                   and (d := self.aliases.get(device, name)) is not None]
        if not changed:
            return None
        p = self._payload()
        for d, key in changed:
            add_metric(p, d, values.get(key), False, p.timestamp)
        self._sent_dev[device] = dict(values)
        return p.SerializeToString()

    def event(self, record: Record, payload: dict[str, Any], device: str | None) -> bytes:
        """DDATA of one record (NDATA for a record without a station): every field of its
        kind, stamped with the record's time; `is_historical` when replayed."""
        p = self._payload()
        ts = int(record.created.timestamp() * 1000)
        kind = str(record.kind)
        if device is None or kind not in EVENT_KINDS:
            d: MetricDef | None = self.agent_events if device is None else _unknown_kind(kind)
            assert d is not None
            add_metric(p, d, json.dumps(payload, default=str), False, ts, record.replayed)
            return p.SerializeToString()
        folder = EVENT_KINDS[kind][0]
        fields = kind_fields(kind)
        values, extra = flatten(payload, [f for f in fields if f[0] not in ("extra",)])
        extra.pop("evidence", None)
        values["extra"] = extra or None
        for path, _ in fields:
            ev = self.aliases.get(device, f"Events/{folder}/{path}")
            if ev is not None:
                add_metric(p, ev, values.get(path), False, ts, record.replayed)
        return p.SerializeToString()

    def is_rebirth_request(self, data: bytes) -> bool:
        """An NCMD whose `Node Control/Rebirth` (by name or alias) is true."""
        p = Payload()
        p.ParseFromString(data)
        return any((m.name == REBIRTH or (m.HasField("alias") and m.alias == self.rebirth.alias))
                   and m.WhichOneof("value") == "boolean_value" and m.boolean_value
                   for m in p.metrics)


_STATION_KEYS = {name: key for name, _, key in STATION_METRICS}


def _station_key(name: str) -> str | None:
    return _STATION_KEYS.get(name)


def _unknown_kind(kind: str) -> MetricDef:
    raise ValueError(f"record kind {kind!r} has no Sparkplug metrics")
