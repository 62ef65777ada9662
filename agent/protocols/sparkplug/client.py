"""Sparkplug B topics, the edge node's bdSeq counter, and its paho client.

The client is the MQTT sink's `RecordingClient` (same TLS, credentials and refusal
handling), with what Sparkplug 3.0 asks of an edge node's connection: a clean session
(MQTT 5: clean start, session expiry 0) and NDEATH as the Last Will, QoS 1, not retained,
carrying the bdSeq of this very connection. bdSeq goes up by one (mod 256) for every
CONNECT and is kept in the state directory, so a restarted agent does not start a session
with the bdSeq of the one a host may still have to see die.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.protocols.base import SinkContext
from agent.protocols.mqtt.client import RecordingClient
from agent.protocols.sparkplug.payload import bdseq_payload
from agent.protocols.tls_context import client_ssl_context

if TYPE_CHECKING:
    from agent.protocols.sparkplug.config import SparkplugSinkConfig

log = logging.getLogger(__name__)
NAMESPACE = "spBv1.0"


@dataclass(frozen=True)
class SpbTopics:
    group: str
    node: str
    host: str | None

    def node_topic(self, verb: str) -> str:
        return f"{NAMESPACE}/{self.group}/{verb}/{self.node}"

    def device_topic(self, verb: str, device: str) -> str:
        return f"{NAMESPACE}/{self.group}/{verb}/{self.node}/{device}"

    @property
    def state_topic(self) -> str | None:
        return None if self.host is None else f"{NAMESPACE}/STATE/{self.host}"


def device_id(line: str, station: str) -> str:
    """A station's Sparkplug device id: `<line>:<station>` (one topic level)."""
    return f"{line}:{station}"


class BdSeq:
    """The birth/death sequence number, 0-255, persisted in `path` (JSON)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.value = self._load()

    def _load(self) -> int:
        try:
            return int(json.loads(self.path.read_text())["bdSeq"]) % 256
        except FileNotFoundError:
            return 255  # the first connect uses 0
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s unreadable (%s): bdSeq starts again at 0", self.path, exc)
            return 255

    def next(self) -> int:
        """The bdSeq of a new connection (and saved before the CONNECT goes out)."""
        self.value = (self.value + 1) % 256
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"bdSeq": self.value}))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot save bdSeq to %s: %s", self.path, exc)
        return self.value


def set_ndeath_will(client: mqtt.Client, topics: SpbTopics, bdseq: int) -> None:
    props = Properties(PacketTypes.WILLMESSAGE) if client.protocol == mqtt.MQTTv5 else None
    client.will_set(topics.node_topic("NDEATH"), bdseq_payload(bdseq), qos=1, retain=False,
                    properties=props)


def connect_properties(cfg: SparkplugSinkConfig) -> Properties | None:
    if cfg.protocol != "5":
        return None
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    return props


def build_spb_client(cfg: SparkplugSinkConfig, ctx: SinkContext, where: str) -> RecordingClient:
    """A configured paho client (not connected). ValueError (naming `where`) for unusable
    TLS files. The Last Will is set by the sink before every CONNECT."""
    client_id = cfg.client_id or f"{ctx.agent_id}-spb"
    kwargs: dict[str, Any] = {"client_id": client_id}
    if cfg.protocol == "5":
        kwargs["protocol"] = mqtt.MQTTv5
    else:
        kwargs.update(protocol=mqtt.MQTTv311, clean_session=True)
    client = RecordingClient(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
    if cfg.username is not None:
        password = cfg.password.get_secret_value() if cfg.password else None
        client.username_pw_set(cfg.username, password)
    if cfg.tls is not None:
        client.tls_set_context(client_ssl_context(cfg.tls, ctx.base_dir, where))
    client.reconnect_delay_set(1, max(1, int(cfg.reconnect_max_s)))
    client.max_inflight_messages_set(max(20, cfg.outbox.batch_size))
    return client
