"""Sparkplug B topics, the edge node's bdSeq counter, and its paho client.

The client is the MQTT sink's `RecordingClient`, from the one builder (same TLS,
credentials and refusal handling), with what Sparkplug 3.0 asks of an edge node's
connection: a clean session (MQTT 5: clean start, session expiry 0) and NDEATH as the Last
Will, QoS 1, not retained, carrying the bdSeq of this very connection. bdSeq goes up by one (mod 256) for every
CONNECT and is kept in the state directory, so a restarted agent does not start a session
with the bdSeq of the one a host may still have to see die.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from agent.protocols.base import SinkContext
from agent.protocols.mqtt.client import RecordingClient, Will, build_mqtt_client
from agent.protocols.sparkplug.payload import bdseq_payload

if TYPE_CHECKING:
    from agent.protocols.sparkplug.config import SparkplugSinkConfig

log = logging.getLogger(__name__)
NAMESPACE = "spBv1.0"


class SpbTopics(NamedTuple):
    """The topics of one edge node (`group`/`node`) and of its primary host, if any."""

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


class NodeDeath:
    """The edge node's Last Will: NDEATH with the bdSeq of the connection about to be made
    (the client builder calls it before every CONNECT; `bdseq` is then that connection's)."""

    def __init__(self, topics: SpbTopics, counter: BdSeq) -> None:
        self.topics = topics
        self.counter = counter
        self.bdseq = 0

    def __call__(self) -> Will:
        self.bdseq = self.counter.next()  # saved before the CONNECT goes out
        return Will(self.topics.node_topic("NDEATH"), bdseq_payload(self.bdseq), qos=1)


def build_spb_client(cfg: SparkplugSinkConfig, ctx: SinkContext, where: str,
                     death: NodeDeath) -> RecordingClient:
    """A configured paho client (not connected): clean session, NDEATH as its Last Will.
    ValueError (naming `where`) for unusable TLS files."""
    return build_mqtt_client(cfg, where, ctx.base_dir, client_id=cfg.client_id or f"{ctx.agent_id}-spb",
                             protocol=cfg.protocol, clean=True, session_expiry_s=0, will=death,
                             reconnect_max_s=cfg.reconnect_max_s,
                             max_inflight=max(20, cfg.outbox.batch_size),
                             client_class=RecordingClient)
