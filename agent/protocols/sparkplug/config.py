"""Sparkplug B 3.0 sink plugin: config model and factory.

The agent is one Sparkplug edge node (`group_id` / `edge_node_id`), each station one device
(`<line>:<station>`). Records go out as DDATA through the outbox; telemetry (verdict counts,
fps, latched stop, ...) as NDATA/DDATA from the status loop. See the README, "Sparkplug B".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from agent.config.plugin import Plugin
from agent.protocols.base import SinkSettings
from agent.protocols.mqtt.broker import BrokerConnection
from agent.protocols.outbox_policy import MqttOutboxPolicy

if TYPE_CHECKING:
    pass

SPB_ID = r"^[^/+#]+$"  # a Sparkplug id is one topic level without wildcards


class SparkplugSinkConfig(BrokerConnection, SinkSettings):
    type: Literal["sparkplug"] = Field(description="Sparkplug B 3.0 edge node (Ignition, other Sparkplug host applications).")
    protocol: Literal["3.1.1", "5"] = Field("3.1.1", description="MQTT protocol version (Sparkplug 3.0 allows both).")
    client_id: str | None = Field(None, description="Client id; default: `<agent_id>-spb`.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive: how soon the broker publishes NDEATH after the agent vanished (about 1.5x).")
    group_id: str = Field(description="Sparkplug group id (e.g. the site or area).", pattern=SPB_ID)
    edge_node_id: str | None = Field(None, description="Sparkplug edge node id; default: the agent id.", pattern=SPB_ID)
    primary_host_id: str | None = Field(None, description="Host id of the primary host application (its STATE topic `spBv1.0/STATE/<id>`): births wait until it is online, and records stay in the outbox while it is offline. Absent: no STATE check.", pattern=SPB_ID)
    record_qos: Literal[0, 1] = Field(1, description="QoS of records (DDATA of events). 1: a record leaves the outbox only after the broker's PUBACK (the agent's delivery rule); 0: as the specification suggests for data messages, sent = written to the socket.")
    status_interval_s: float = Field(10.0, gt=0, description="Period of the telemetry NDATA/DDATA (only changed values are sent).")
    ack_timeout_s: float = Field(10.0, gt=0, description="A send waits this long for every PUBACK, then counts as 'unavailable' (retried).")
    reconnect_max_s: float = Field(30.0, gt=0, description="Cap of the reconnect backoff.")
    outbox: MqttOutboxPolicy = Field(default_factory=MqttOutboxPolicy, description="Outbox bounds for this sink.")


SINK = Plugin("sparkplug", SparkplugSinkConfig, "agent.protocols.sparkplug.factory:build")
