"""Sparkplug B payloads: metric definitions bound to aliases, values encoded with protobuf.

Aliases are unique per edge node (node metrics and every device's); a birth carries each
metric's name, alias and datatype, every later data message the alias only. The metric
names the agent publishes are listed in the README ("Sparkplug B").
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel

from agent.protocols.sparkplug.sparkplug_b_pb2 import DataType as DT
from agent.protocols.sparkplug.sparkplug_b_pb2 import Payload

BDSEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"

# (scope, metric name, datatype, key in the snapshot): a "station" metric is each station's
# (device's) telemetry, a "node" metric the edge node's
METRICS: tuple[tuple[str, str, int, str], ...] = (
    ("station", "Verdicts/OK", DT.UInt64, "ok"),
    ("station", "Verdicts/NG", DT.UInt64, "ng"),
    ("station", "Verdicts/UNKNOWN", DT.UInt64, "unknown"),
    ("station", "Verdicts/Last", DT.String, "last_verdict"),
    ("station", "Last Defect/Code", DT.Int32, "last_defect_code"),
    ("station", "Last Defect/Class", DT.String, "last_defect_class"),
    ("station", "Camera/State", DT.String, "camera_state"),
    ("station", "Camera/FPS", DT.Double, "fps"),
    ("station", "Camera/Frame Age ms", DT.Double, "frame_age_ms"),
    ("station", "Inference/p99 ms", DT.Double, "infer_p99_ms"),
    ("station", "Stop/Latched", DT.Boolean, "latched"),
    ("station", "PLC/Link", DT.String, "plc_link"),
    ("node", "Health/Healthy", DT.Boolean, "healthy"),
    ("node", "Outbox/Depth", DT.UInt64, "outbox_depth"),
    ("node", "Properties/Version", DT.String, "version"),
    ("node", "Properties/Site", DT.String, "site"),
    ("node", "Properties/Agent Id", DT.String, "agent_id"),
    ("node", "Properties/Models", DT.String, "models"),
)
STATION_METRICS = tuple((name, dt, key) for scope, name, dt, key in METRICS if scope == "station")
NODE_METRICS = tuple((name, dt, key) for scope, name, dt, key in METRICS if scope == "node")
_INT32 = {DT.Int8, DT.Int16, DT.Int32, DT.UInt8, DT.UInt16, DT.UInt32}
_INT64 = {DT.Int64, DT.UInt64, DT.DateTime}


@dataclass(frozen=True)
class MetricDef:
    name: str
    alias: int
    datatype: int


class AliasTable:
    """Metric definitions per scope (None = the edge node, else a device id); aliases are
    handed out once, in definition order, and never reused for another metric."""

    def __init__(self) -> None:
        self._next = 1
        self._defs: dict[str | None, dict[str, MetricDef]] = {}

    def define(self, scope: str | None, name: str, datatype: int) -> MetricDef:
        defs = self._defs.setdefault(scope, {})
        if name not in defs:
            defs[name] = MetricDef(name, self._next, datatype)
            self._next += 1
        return defs[name]

    def get(self, scope: str | None, name: str) -> MetricDef | None:
        return self._defs.get(scope, {}).get(name)

    def scope(self, scope: str | None) -> list[MetricDef]:
        return list(self._defs.get(scope, {}).values())


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def set_value(m: Payload.Metric, datatype: int, value: Any) -> None:
    """The value in the field the specification assigns to `datatype`; None (or a float
    that is not finite) is sent as is_null."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        m.is_null = True
    elif datatype == DT.Boolean:
        m.boolean_value = bool(value)
    elif datatype in _INT32:
        m.int_value = int(value) & 0xFFFFFFFF  # negative: two's complement (3.0, 6.4.16)
    elif datatype in _INT64:
        m.long_value = _ms(value) if datatype == DT.DateTime else int(value) & (2**64 - 1)
    elif datatype == DT.Float:
        m.float_value = float(value)
    elif datatype == DT.Double:
        m.double_value = float(value)
    else:
        m.string_value = value if isinstance(value, str) else json.dumps(value, default=str)


def _ms(value: Any) -> int:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def add_metric(payload: Payload, d: MetricDef, value: Any, birth: bool, ts: int,
               historical: bool = False) -> None:
    """Births carry name, alias and datatype; data messages the alias only."""
    m = payload.metrics.add()
    if birth:
        m.name = d.name
        m.datatype = d.datatype
    m.alias = d.alias
    m.timestamp = ts
    if historical:
        m.is_historical = True
    set_value(m, d.datatype, value)


def bdseq_payload(bdseq: int) -> bytes:
    """NDEATH (the Last Will) and the bdSeq of the NBIRTH: bdSeq by name, UInt64."""
    p = Payload(timestamp=now_ms())
    m = p.metrics.add(name=BDSEQ, datatype=DT.UInt64, timestamp=p.timestamp)
    m.long_value = bdseq
    return p.SerializeToString()


# ---- record payloads -> event metrics ------------------------------------------------------

def event_fields(model: type[BaseModel]) -> list[tuple[str, int]]:
    """(path, datatype) of every field of a record payload model; nested models are flattened
    with '/', lists and maps travel as JSON text."""
    out: list[tuple[str, int]] = []
    for name, field in model.model_fields.items():
        ann = _strip_optional(field.annotation)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += [(f"{name}/{sub}", dt) for sub, dt in event_fields(ann)]
        else:
            out.append((name, _datatype(ann)))
    return out


def _strip_optional(ann: Any) -> Any:
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return ann


def _datatype(ann: Any) -> int:
    if typing.get_origin(ann) is Literal:
        ann = type(typing.get_args(ann)[0])
    if ann is bool:
        return DT.Boolean
    if ann is int:
        return DT.Int64
    if ann is float:
        return DT.Double
    if ann is datetime:
        return DT.DateTime
    return DT.String


def flatten(payload: dict[str, Any], fields: list[tuple[str, int]]) -> tuple[dict[str, Any],
                                                                             dict[str, Any]]:
    """(values by field path, fields the model does not know)."""
    values: dict[str, Any] = {}
    for path, _ in fields:
        node: Any = payload
        for part in path.split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        values[path] = node
    known = {path.split("/", 1)[0] for path, _ in fields}
    extra = {k: v for k, v in payload.items() if k not in known}
    return values, extra
