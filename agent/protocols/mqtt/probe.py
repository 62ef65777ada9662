"""Commissioning check of an MQTT sink: publish permission (QoS 1, not retained, PUBACK
awaited) for each topic the sink publishes on. The client is built as the sink's (one
builder: protocol, credentials, TLS with the same `verify`) and a refused connection is
worded from the same table: the probe passes where the daemon connects."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from agent.protocols.mqtt.client import (
    MqttClient,
    build_mqtt_client,
    connect_and_wait,
    is_v5,
    publish_properties,
)
from agent.protocols.mqtt.config import MqttSinkConfig
from agent.protocols.probe import ProbeRow

PROBE_EXPIRY_S = 60


def mqtt_publish(name: str, cfg: MqttSinkConfig, base_dir: Path, client_id: str,
                 messages: list[tuple[str, dict[str, Any]]], timeout: float) -> list[ProbeRow]:
    """Connect and publish each (topic, payload) at QoS 1, not retained; one row per message."""
    where = f"mqtt {cfg.host}:{cfg.port}"
    try:
        client = build_mqtt_client(cfg, where, base_dir, client_id=client_id,
                                   protocol=cfg.protocol, reconnect_max_s=timeout)
    except ValueError as exc:  # unusable TLS files
        return [ProbeRow(name, "connect", where, False, str(exc))]
    refusal = connect_and_wait(client, max(5, int(timeout) + 5), timeout)
    if refusal is not None:
        client.loop_stop()
        return [ProbeRow(name, "connect", where, False, refusal.reason)]
    rows = [ProbeRow(name, "connect", where, True, "connected")]
    try:
        rows += [_publish(client, name, topic, payload, timeout) for topic, payload in messages]
    finally:
        client.disconnect()
        client.loop_stop()
    return rows


def _publish(client: MqttClient, name: str, topic: str, payload: dict[str, Any],
             timeout: float) -> ProbeRow:
    acked = threading.Event()
    reason_box: list[Any] = [None]

    def on_publish(_c: Any, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        reason_box[0] = reason
        acked.set()

    client.on_publish = on_publish
    v5 = is_v5(client)
    props = publish_properties(PROBE_EXPIRY_S) if v5 else None
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
