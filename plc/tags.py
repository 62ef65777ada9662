"""The tag map (plc/tags.yaml) as typed objects: the one source of addresses and node ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.data import resource_path

TAGS_FILE = resource_path("plc", "tags.yaml")  # package data of the wheel
TYPES = ("bool", "u16", "i16", "u32", "i32", "f32")


@dataclass(frozen=True)
class Tag:
    key: str  # "agent.heartbeat", "line1.station1.stop_request", "plant.parts_count"
    signal: str  # "heartbeat", "stop_request", ...
    modbus: str
    opcua: str
    type: str
    dir: str  # "out": agent writes, "in": agent reads

    def default(self) -> bool | int | float:
        return False if self.type == "bool" else 0.0 if self.type == "f32" else 0


@dataclass(frozen=True)
class TagMap:
    namespace_uri: str
    endpoint: str
    modbus_device_id: int
    modbus_port: int
    tags: dict[str, Tag]
    stations: tuple[str, ...]  # "line1.station1"
    stop_methods: dict[str, tuple[str, str]] = field(default_factory=dict)  # station -> (object, method)

    def station_tags(self, station: str) -> dict[str, Tag]:
        prefix = f"{station}."
        return {t.signal: t for k, t in self.tags.items() if k.startswith(prefix)}

    def signals(self, station: str, protocol: str) -> dict[str, str]:
        """{signal: address or node id} of one station, for StationSignals."""
        return {s: getattr(t, protocol) for s, t in self.station_tags(station).items()}

    def agent(self, signal: str) -> Tag:
        return self.tags[f"agent.{signal}"]

    def plant(self, signal: str) -> Tag:
        return self.tags[f"plant.{signal}"]


def load_tags(path: Path = TAGS_FILE) -> TagMap:
    raw = yaml.safe_load(path.read_text())
    tags: dict[str, Tag] = {}
    for signal, spec in raw.get("agent", {}).items():
        tags[f"agent.{signal}"] = _tag(f"agent.{signal}", signal, spec)
    for signal, spec in raw.get("plant", {}).items():
        tags[f"plant.{signal}"] = _tag(f"plant.{signal}", signal, spec)
    for station, signals in raw.get("stations", {}).items():
        for signal, spec in signals.items():
            tags[f"{station}.{signal}"] = _tag(f"{station}.{signal}", signal, spec)
    return TagMap(
        namespace_uri=raw["opcua"]["namespace_uri"],
        endpoint=raw["opcua"]["endpoint"],
        modbus_device_id=int(raw["modbus"]["device_id"]),
        modbus_port=int(raw["modbus"]["port"]),
        tags=tags,
        stations=tuple(raw.get("stations", {})),
        stop_methods={st: (m["stop"]["object"], m["stop"]["method"])
                      for st, m in (raw.get("methods") or {}).items() if "stop" in m},
    )


def _tag(key: str, signal: str, spec: dict[str, Any]) -> Tag:
    if spec["type"] not in TYPES:
        raise ValueError(f"plc/tags.yaml: {key}: unknown type {spec['type']!r}")
    return Tag(key, signal, str(spec["modbus"]), str(spec["opcua"]), spec["type"], spec["dir"])
