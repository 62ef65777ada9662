"""The MQTT sink with Home Assistant MQTT discovery (`homeassistant.enabled`).

Announces the entities of agent.protocols.mqtt.ha_discovery (retained, QoS 1) on every connect, when
Home Assistant says `online` on `<prefix>/status`, and when the stations change; removes
(empty retained payload) the entities of stations no longer configured, remembered in the
state directory from the last announcement. Per-station state is published retained from
the health loop's station snapshot.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import suppress
from pathlib import Path
from typing import Any

from agent.protocols.base import SinkState, SinkUnavailable, encode_json
from agent.protocols.mqtt.ha_discovery import Discovery, station_state, station_state_topic
from agent.protocols.mqtt.sink import MqttSink

log = logging.getLogger(__name__)


class HaMqttSink(MqttSink):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.discovery = Discovery(self.cfg.homeassistant, self.ctx.agent_id, self.ctx.site,
                                   self.cfg.prefix, self.topics.status_topic)
        self.announced_path = Path(self.ctx.state_dir) / f"ha-discovery-{self.name}.json"
        self._stations: list[tuple[str, str]] | None = None  # unknown until the first snapshot
        self._sent_state: dict[str, dict[str, Any]] = {}

    async def publish_snapshot(self, snapshot: dict[str, Any]) -> None:
        stations = [tuple(key.split("/", 1)) for key in snapshot.get("stations", {})]
        if stations != self._stations:
            self._stations = [(line, st) for line, st in stations]
            self._sent_state = {}
            self.announce()
        if self.state is not SinkState.CONNECTED:
            return
        for key, values in snapshot.get("stations", {}).items():
            body = station_state(values)
            if self._sent_state.get(key) != body:
                line, st = key.split("/", 1)
                topic = station_state_topic(self.cfg.prefix, self.ctx.site, line, st)
                if self.status.publish_json(topic, body, qos=1, retain=True):
                    self._sent_state[key] = body

    def announce(self) -> None:
        """Every entity's config (retained), then an empty retained payload for each one
        announced before that is gone (a station removed from the config)."""
        if self.state is not SinkState.CONNECTED or self._stations is None:
            return
        entities = self.discovery.entities(self._stations)
        for topic, body in entities.items():
            self.status.publish_json(topic, body, qos=1, retain=True)
        for topic in sorted(set(self._announced()) - set(entities)):
            with suppress(SinkUnavailable):  # lost meanwhile: announced again at connect
                self.session.publish(topic, b"", qos=1, retain=True)
            log.info("%s: Home Assistant entity removed: %s", self.where, topic)
        self._save_announced(sorted(entities))
        self._sent_state = {}  # the state topics too, for a broker that lost them

    def _announced(self) -> list[str]:
        try:
            return list(json.loads(self.announced_path.read_text()))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("%s: %s unreadable (%s): stale entities are not removed", self.where,
                        self.announced_path, exc)
            return []

    def _save_announced(self, topics: list[str]) -> None:
        try:
            tmp = self.announced_path.with_suffix(".tmp")
            tmp.write_bytes(encode_json(topics))
            os.replace(tmp, self.announced_path)
        except OSError as exc:
            log.warning("%s: cannot save %s: %s", self.where, self.announced_path, exc)

    # ---- MqttSink hooks ------------------------------------------------------------------

    def session_up(self, properties: Any) -> None:
        super().session_up(properties)
        self.client.subscribe(self.discovery.ha_status_topic, qos=1)
        self.announce()

    def on_message(self, topic: str, payload: bytes) -> None:
        if topic == self.discovery.ha_status_topic:
            if payload == b"online":
                self.announce()
            return
        super().on_message(topic, payload)
