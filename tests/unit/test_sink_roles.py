"""What a sink does besides sending records is declared by the Protocols of
agent.protocols.base, and the app asks `isinstance`: each sink type is what it says."""

from __future__ import annotations

from pathlib import Path

from pydantic import TypeAdapter

from agent.plugins import SINKS
from agent.protocols.base import (
    CommandSource,
    EvidenceTaker,
    Sink,
    SinkContext,
    SnapshotPublisher,
    StatusPublisher,
)

BROKER = {"host": "127.0.0.1", "port": 1883}
ROLES = (StatusPublisher, SnapshotPublisher, CommandSource, EvidenceTaker)
SINKS_AND_ROLES = {  # config, then whether it is each of ROLES
    "mqtt": ({"type": "mqtt", **BROKER}, (True, False, True, False)),
    "ha": ({"type": "mqtt", **BROKER, "homeassistant": {"enabled": True}},
           (True, True, True, False)),
    "sparkplug": ({"type": "sparkplug", **BROKER, "group_id": "plant"},
                  (True, True, False, False)),
    "http": ({"type": "http", "url": "http://127.0.0.1:1/records"}, (False, False, False, True)),
    "file": ({"type": "file", "dir": "out"}, (False, False, False, True)),
}


def test_every_sink_declares_what_it_does(tmp_path: Path) -> None:
    ctx = SinkContext("plant", "edge1", tmp_path, tmp_path)
    union = TypeAdapter(SINKS.union())
    roles = {}
    for name, (raw, _) in SINKS_AND_ROLES.items():
        sink = SINKS.build(name, union.validate_python(raw), ctx)
        assert isinstance(sink, Sink)
        roles[name] = tuple(isinstance(sink, role) for role in ROLES)
    assert roles == {name: expected for name, (_, expected) in SINKS_AND_ROLES.items()}
