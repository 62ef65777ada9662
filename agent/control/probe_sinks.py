"""Commissioning checks of MES sinks: MQTT publish permission (QoS 1, not retained,
PUBACK awaited, paho directly), file-drop folder writable, HTTP endpoint reachable."""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.control.probe_plc import ProbeRow
from agent.sinks.file import FileSinkConfig
from agent.sinks.http import HttpSinkConfig
from agent.sinks.mqtt import MqttSinkConfig
from agent.sinks.mqtt_client import apply_credentials, describe_connack


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


def probe_file(name: str, cfg: FileSinkConfig, base_dir: Path) -> ProbeRow:
    folder = Path(cfg.dir) if os.path.isabs(cfg.dir) else base_dir / cfg.dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        test = folder / f".probe-{uuid.uuid4().hex}"
        test.write_bytes(b"probe\n")
        test.unlink()
    except OSError as exc:
        return ProbeRow(name, "write", str(folder), False, f"{exc.strerror}: {exc.filename}")
    return ProbeRow(name, "write", str(folder), True, "folder writable")


def probe_http(name: str, cfg: HttpSinkConfig, timeout: float) -> ProbeRow:
    u = urlparse(cfg.url)
    port = u.port or (443 if u.scheme == "https" else 80)
    t0 = time.monotonic()
    try:
        with socket.create_connection((u.hostname or "", port), timeout=timeout):
            pass
    except OSError as exc:
        return ProbeRow(name, "connect", f"{u.hostname}:{port}", False, str(exc))
    ms = (time.monotonic() - t0) * 1000
    return ProbeRow(name, "connect", f"{u.hostname}:{port}", True,
                    f"TCP reachable in {ms:.0f} ms (no request sent)")
