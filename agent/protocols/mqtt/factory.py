"""MQTT factories: the registry's `mqtt` sink and `mqtt` PLC, the topic map and the
command keyring (also used by `reset`, `probe` and `alerts`)."""

from __future__ import annotations

from agent.backoff import Backoff
from agent.protocols.base import SinkContext
from agent.protocols.mqtt.client import RecordingClient, build_mqtt_client
from agent.protocols.mqtt.command_auth import Keyring, keyring
from agent.protocols.mqtt.commands import CommandPolicy
from agent.protocols.mqtt.config import MqttCommandsConfig, MqttSinkConfig
from agent.protocols.mqtt.ha_sink import HaMqttSink
from agent.protocols.mqtt.plc_config import MqttPlcConfig
from agent.protocols.mqtt.plc_link import MqttPlcLink
from agent.protocols.mqtt.sink import MqttSink
from agent.protocols.mqtt.status import status_will
from agent.protocols.mqtt.topics import TopicMap, check_level


def topic_map(cfg: MqttSinkConfig, site: str, agent_id: str) -> TopicMap:
    """The one topic map of this sink: the daemon, the probe, `reset` and `alerts` agree."""
    for level in cfg.prefix.split("/"):
        check_level(level, "prefix level")
    return TopicMap(prefix=cfg.prefix, site=site, agent_id=agent_id,
                    templates=dict(cfg.topics), qos_by_kind=dict(cfg.qos),
                    expiry_by_kind=dict(cfg.message_expiry_s),
                    command_template=cfg.commands.topic)


def build(name: str, cfg: MqttSinkConfig, ctx: SinkContext) -> MqttSink:
    """Factory: topic map, command policy and paho client from the config."""
    where = f"mqtt sink {name!r} (broker {cfg.host}:{cfg.port})"
    topics = topic_map(cfg, ctx.site, ctx.agent_id)
    policy = CommandPolicy(keyring=command_keyring(cfg.commands),
                           allowed_client_ids=tuple(cfg.commands.allowed_client_ids),
                           max_age_s=cfg.commands.max_age_s,
                           max_future_s=cfg.commands.max_future_s)
    # a whole outbox batch in flight at once: paho's default window of 20 makes a batch of 50
    # wait for acknowledgements mid-batch (the broker may still cap it with max_inflight)
    client = build_mqtt_client(
        cfg, where, ctx.base_dir, client_id=cfg.client_id or ctx.agent_id,
        protocol=cfg.protocol, clean=False, session_expiry_s=cfg.session_expiry_s,
        will=lambda: status_will(ctx, topics.status_topic), reconnect_max_s=cfg.reconnect_max_s,
        max_inflight=max(20, cfg.outbox.batch_size), client_class=RecordingClient)
    if cfg.homeassistant.enabled:
        return HaMqttSink(name, cfg, ctx, client, topics, policy)
    return MqttSink(name, cfg, ctx, client, topics, policy)


def command_keyring(cfg: MqttCommandsConfig) -> Keyring | None:
    """The keyring of the command path (None without a key)."""
    if cfg.key is None:
        return None
    return keyring(cfg.key_id, cfg.key.get_secret_value(),
                   {k: v.get_secret_value() for k, v in cfg.previous_keys.items()})


def build_plc(name: str, cfg: MqttPlcConfig, ctx: SinkContext) -> MqttPlcLink:
    """Factory: an MqttPlcLink for this PLC target (not started)."""
    backoff = Backoff(cfg.reconnect_initial_ms / 1000, cfg.reconnect_max_ms / 1000)
    return MqttPlcLink(name, cfg, ctx, backoff)
