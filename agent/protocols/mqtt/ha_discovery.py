"""Home Assistant MQTT discovery: the config block and the discovery payloads (no I/O).

With `homeassistant.enabled` on an MQTT sink, the agent announces per station a sensor for
the OK and NG counts and the last defect and a binary sensor for the latched stop, plus one
binary sensor for the agent being online, at
`<discovery_prefix>/<component>/<node_id>/<object_id>/config` (retained). Station entities
read a retained per-station state topic; all of them are available while the agent's retained
status says `online` (its Last Will says `offline`).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from agent import __version__
from agent.config.base import Strict

HA_ID = r"^[a-zA-Z0-9_-]+$"


class HomeAssistantConfig(Strict):
    enabled: bool = Field(False, description="Publish Home Assistant MQTT discovery (sensors per station, agent online).")
    discovery_prefix: str = Field("homeassistant", description="Home Assistant's discovery prefix.", pattern=r"^[^/+#]+$")
    node_id: str | None = Field(None, description="Node id in the discovery topics; default: the agent id.", pattern=HA_ID)


def ha_id(text: str) -> str:
    """An object id from a name: characters HA does not take become '_'."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", text)


def station_state_topic(prefix: str, site: str, line: str, station: str) -> str:
    return f"{prefix}/{site}/{line}/{station}/state"


def station_state(values: dict[str, Any]) -> dict[str, Any]:
    """The retained per-station state the station entities read."""
    code, cls = values.get("last_defect_code"), values.get("last_defect_class")
    return {"ok": values.get("ok", 0), "ng": values.get("ng", 0),
            "unknown": values.get("unknown", 0), "last_verdict": values.get("last_verdict"),
            "last_defect": f"{cls} ({code})" if cls else None,
            "last_defect_code": code, "latched": bool(values.get("latched"))}


class Discovery:
    """Discovery topics and payloads of one agent."""

    def __init__(self, cfg: HomeAssistantConfig, agent_id: str, site: str, prefix: str,
                 status_topic: str) -> None:
        self.cfg = cfg
        self.node = cfg.node_id or ha_id(agent_id)
        self.site = site
        self.prefix = prefix
        self.status_topic = status_topic
        self.device = {"identifiers": [f"edge-agent-{self.node}"],
                       "name": f"edge-agent {agent_id}", "manufacturer": "edge-agent",
                       "model": "edge vision agent", "sw_version": __version__}

    def topic(self, component: str, object_id: str) -> str:
        return f"{self.cfg.discovery_prefix}/{component}/{self.node}/{object_id}/config"

    @property
    def ha_status_topic(self) -> str:
        """Home Assistant's birth topic: announce again when it says `online`."""
        return f"{self.cfg.discovery_prefix}/status"

    def availability(self) -> list[dict[str, str]]:
        return [{"topic": self.status_topic, "value_template": "{{ value_json.state }}",
                 "payload_available": "online", "payload_not_available": "offline"}]

    def _entity(self, object_id: str, name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "unique_id": f"{self.node}_{object_id}",
                "object_id": f"{self.node}_{object_id}", "device": self.device,
                "origin": {"name": "edge-agent", "sw_version": __version__}, **extra}

    def agent_entities(self) -> dict[str, dict[str, Any]]:
        online = self._entity("online", "Online", state_topic=self.status_topic,
                              value_template="{{ value_json.state }}", payload_on="online",
                              payload_off="offline", device_class="connectivity")
        return {self.topic("binary_sensor", "online"): online}

    def station_entities(self, line: str, station: str) -> dict[str, dict[str, Any]]:
        base = ha_id(f"{line}_{station}")
        state = station_state_topic(self.prefix, self.site, line, station)
        common = {"state_topic": state, "availability": self.availability()}
        return {
            self.topic("sensor", f"{base}_ok"): self._entity(
                f"{base}_ok", f"{line}/{station} OK", value_template="{{ value_json.ok }}",
                state_class="total_increasing", **common),
            self.topic("sensor", f"{base}_ng"): self._entity(
                f"{base}_ng", f"{line}/{station} NG", value_template="{{ value_json.ng }}",
                state_class="total_increasing", **common),
            self.topic("sensor", f"{base}_last_defect"): self._entity(
                f"{base}_last_defect", f"{line}/{station} last defect",
                value_template="{{ value_json.last_defect or 'none' }}", **common),
            self.topic("binary_sensor", f"{base}_stop_latched"): self._entity(
                f"{base}_stop_latched", f"{line}/{station} stop latched",
                value_template="{{ 'ON' if value_json.latched else 'OFF' }}",
                device_class="problem", **common),
        }

    def entities(self, stations: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        out = self.agent_entities()
        for line, station in stations:
            out.update(self.station_entities(line, station))
        return out
