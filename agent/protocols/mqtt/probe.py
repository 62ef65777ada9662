"""Commissioning check of an MQTT sink: publish permission (QoS 1, not retained, PUBACK
awaited) for each topic the sink publishes on."""

from __future__ import annotations

import json
import ssl
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.protocols.mqtt.client import apply_credentials, describe_connack
from agent.protocols.mqtt.config import MqttSinkConfig
from agent.protocols.probe import ProbeRow


def mqtt_publish(name: str, cfg: MqttSinkConfig, base_dir: Path, client_id: str,
                 messages: list[tuple[str, dict[str, Any]]], timeout: float) -> list[ProbeRow]:
    """Connect and publish each (topic, payload) at QoS 1, not retained; one row per message."""
    where = f"mqtt {cfg.host}:{cfg.port}"
    v5 = cfg.protocol == "5"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    try:
        apply_credentials(client, cfg.username, cfg.password, cfg.tls, base_dir, where)
        connected = _connect(client, cfg, timeout)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return [ProbeRow(name, "connect", where, False, f"{type(exc).__name__}: {exc}")]
    if connected is not None:
        client.loop_stop()
        return [ProbeRow(name, "connect", where, False, connected)]
    rows = [ProbeRow(name, "connect", where, True, "connected")]
    try:
        rows += [_publish(client, name, topic, payload, timeout, v5) for topic, payload in messages]
    finally:
        client.disconnect()
        client.loop_stop()
    return rows


def _connect(client: mqtt.Client, cfg: MqttSinkConfig, timeout: float) -> str | None:
    """None when connected, else why not."""
    done = threading.Event()
    result: list[str | None] = [None]

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        result[0] = describe_connack(reason)[0] if reason.is_failure else None
        done.set()

    client.on_connect = on_connect
    client.connect(cfg.host, cfg.port, keepalive=max(5, int(timeout) + 5))
    client.loop_start()
    if not done.wait(timeout):
        return f"no CONNACK within {timeout:.0f} s"
    return result[0]


def _publish(client: mqtt.Client, name: str, topic: str, payload: dict[str, Any],
             timeout: float, v5: bool) -> ProbeRow:
    acked = threading.Event()
    reason_box: list[Any] = [None]

    def on_publish(_c: Any, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        reason_box[0] = reason
        acked.set()

    client.on_publish = on_publish
    props = None
    if v5:
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = 60
    info = client.publish(topic, json.dumps(payload), qos=1, retain=False, properties=props)
    if info.rc != mqtt.MQTT_ERR_SUCCESS:
        return ProbeRow(name, "publish", topic, False, f"not sent: {mqtt.error_string(info.rc)}")
    if not acked.wait(timeout):
        return ProbeRow(name, "publish", topic, False, f"no PUBACK within {timeout:.0f} s")
    reason = reason_box[0]
    if getattr(reason, "is_failure", False):
        return ProbeRow(name, "publish", topic, False, f"broker refused: {reason}")
    note = "PUBACK" if v5 else "PUBACK (MQTT 3.1.1 cannot report a denied publish)"
    return ProbeRow(name, "publish", topic, True, note)
