"""Build and describe the paho-mqtt 2.x client used by the MQTT sink.

`build_client` turns an MqttSinkConfig into a configured (not yet connected)
paho client: protocol, client id, persistent session, credentials, TLS, Last
Will and reconnect backoff. The helpers below classify connection failures
into "retrying helps" and "the configuration or credentials are wrong".
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers
from paho.mqtt.reasoncodes import ReasonCode

from agent import __version__
from agent.decision.payloads import StatusPayload
from agent.protocols.base import SinkContext
from agent.protocols.tls_context import client_ssl_context

if TYPE_CHECKING:
    from pathlib import Path

    from pydantic import SecretStr

    from agent.protocols.mqtt.config import MqttSinkConfig
    from agent.protocols.tls import TlsConfig

STATUS_SCHEMA_VERSION = 1
_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
# CONNACK reason codes that retrying will not fix (MQTT 5 numbering; paho maps 3.1.1 onto it)
REFUSED_FOR_GOOD = {
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x8A: "banned",
    0x8C: "bad authentication method",
}


# paho internals that RecordingClient reads or overrides: pinned to the tested minor version in
# pyproject.toml, and checked on every client built so another paho fails loudly at start.
PAHO_INTERNALS = ("_sockpairW", "_sock", "_out_messages", "_inflight_messages", "_thread",
                  "_out_packet", "_update_inflight", "_packet_queue")


class PahoMismatch(RuntimeError):
    """The installed paho-mqtt lacks an internal that the agent's client relies on."""


def check_paho_internals(client: mqtt.Client) -> None:
    missing = [name for name in PAHO_INTERNALS  # set by paho's __init__, or paho's method
               if name not in vars(client) and not hasattr(mqtt.Client, name)]
    if missing:
        raise PahoMismatch(f"paho-mqtt {paho.mqtt.__version__} lacks {', '.join(missing)}, which edge-agent's "
                           "MQTT client overrides: install the version pyproject.toml pins")


class RecordingClient(mqtt.Client):
    """paho client that remembers why the last connection attempt failed (paho's
    on_connect_fail callback does not say), and that changes three of paho's habits that
    cost more than the outbox itself when a batch of records is in flight: a wake-up of the
    network thread per publish (`one_wakeup`), a walk of the in-flight window per PUBACK
    (`_update_inflight`) and delayed ACKs of what it reads (`loop_read`)."""

    last_connect_error: BaseException | None = None
    _held_by: int | None = None  # the thread whose packets are queued without a wake-up

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_paho_internals(self)

    @contextmanager
    def one_wakeup(self) -> Iterator[None]:
        """Publishes made inside wake paho's network thread once, at the end. paho writes a
        byte to its wake-up socket for every packet; each write lets the network thread take
        the GIL mid-burst, which halved the rate of a batch of records (bench/bench_outbox.py).
        The packets are the same and in the same order; only the wake-ups are merged."""
        self._held_by = threading.get_ident()
        try:
            yield
        finally:
            self._held_by = None
            wake = self._sockpairW
            if wake is not None:
                with suppress(OSError):  # full (a wake-up is pending anyway) or closed
                    wake.send(b"0")

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        self._ack_now()
        return rc

    def _ack_now(self) -> None:
        """Acknowledge what was just read at once (Linux TCP_QUICKACK) instead of after the
        delayed-ACK timer. A broker with Nagle on (Mosquitto's default) holds each small
        PUBACK segment until its previous one is acknowledged: with nothing to send while
        waiting for a batch's PUBACKs, every segment waited ~40 ms for our delayed ACK
        (bench/bench_outbox.py: 7,100 -> 13,100 records/s against a default Mosquitto)."""
        sock = self._sock
        if _TCP_QUICKACK is None or not isinstance(sock, socket.socket):
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
        except OSError:  # closing, or not TCP
            pass

    def _update_inflight(self) -> mqtt.MQTTErrorCode:
        # paho calls this on every PUBACK and it walks every message awaiting a PUBACK
        # looking for a queued one: quadratic in the window (500 records in flight cost
        # ~125,000 steps a batch). Nothing is queued when every stored message is in flight.
        if len(self._out_messages) <= self._inflight_messages:
            return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._update_inflight()

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: mqtt.MQTTMessageInfo | None = None) -> mqtt.MQTTErrorCode:
        if self._held_by != threading.get_ident() or self._thread is None:
            return super()._packet_queue(command, packet, mid, qos, info)
        self._out_packet.append({"command": command, "mid": mid, "qos": qos, "pos": 0,
                                 "to_process": len(packet), "packet": packet, "info": info})
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def reconnect(self) -> mqtt.MQTTErrorCode:
        try:
            rc = super().reconnect()
        except OSError as exc:
            self.last_connect_error = exc
            raise
        self.last_connect_error = None
        return rc


def is_v5(client: mqtt.Client) -> bool:
    return bool(client.protocol == mqtt.MQTTv5)


def status_payload(ctx: SinkContext, state: Literal["online", "offline"] | None,
                   ) -> dict[str, Any]:
    """Common fields of agent-level telemetry (agent.decision.payloads StatusPayload /
    MetricsPayload); with `state` ("online" / "offline") a StatusPayload's own fields
    (the Last Will, the status at connect: the health loop's complete one follows)."""
    now = datetime.now(UTC)
    if state is None:
        return {"schema_version": STATUS_SCHEMA_VERSION, "time": now.isoformat(),
                "site": ctx.site, "agent_id": ctx.agent_id}
    status = StatusPayload(time=now, site=ctx.site, agent_id=ctx.agent_id, state=state,
                           version=__version__)
    return status.model_dump(mode="json", include=_STATUS_HEAD)


_STATUS_HEAD = {"schema_version", "time", "site", "agent_id", "state", "version"}


def set_will(client: mqtt.Client, ctx: SinkContext, status_topic: str) -> None:
    """Last Will = retained offline status (re-set before every connect for a fresh time)."""
    props = publish_properties(None) if is_v5(client) else None
    client.will_set(status_topic, json.dumps(status_payload(ctx, "offline")), qos=1,
                    retain=True, properties=props)


def connect_properties(cfg: MqttSinkConfig) -> Properties | None:
    if cfg.protocol != "5":
        return None
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = cfg.session_expiry_s
    return props


class PackedProperties(Properties):
    """PUBLISH properties packed once, by hand. paho's generic `Properties.pack` looks every
    property up by name and cost more per message than the rest of a publish; paho only
    ever calls `pack()` (and `str()` for debug logs) on the properties of a PUBLISH."""

    _packed: bytes
    _expiry: int | None
    _record_id: str | None

    def __init__(self, packed: bytes, expiry_s: int | None, record_id: str | None) -> None:
        # no super().__init__: nothing to set
        object.__setattr__(self, "packetType", PacketTypes.PUBLISH)
        object.__setattr__(self, "_packed", packed)
        object.__setattr__(self, "_expiry", expiry_s)
        object.__setattr__(self, "_record_id", record_id)

    def pack(self) -> bytes:
        return self._packed

    def __str__(self) -> str:
        return (f"[PayloadFormatIndicator: 1, MessageExpiryInterval: {self._expiry}, "
                f"ContentType: application/json, UserProperty: record_id={self._record_id}]")


def _utf8(text: str) -> bytes:
    data = text.encode("utf-8")
    return len(data).to_bytes(2, "big") + data


_FORMAT_AND_TYPE = b"\x01\x01"  # PayloadFormatIndicator = 1 (UTF-8)
_CONTENT_TYPE = b"\x03" + _utf8("application/json")


def publish_properties(expiry_s: int | None, record_id: str | None = None) -> Properties:
    """PayloadFormatIndicator, MessageExpiryInterval, ContentType, UserProperty record_id:
    the same bytes paho's Properties would pack (ids 1, 2, 3, 38, in that order)."""
    buf = _FORMAT_AND_TYPE
    if expiry_s is not None:
        buf += b"\x02" + int(expiry_s).to_bytes(4, "big")
    buf += _CONTENT_TYPE
    if record_id is not None:
        buf += b"\x26" + _utf8("record_id") + _utf8(record_id)
    return PackedProperties(VariableByteIntegers.encode(len(buf)) + buf, expiry_s, record_id)


def apply_credentials(client: mqtt.Client, username: str | None, password: SecretStr | None,
                      tls: TlsConfig | None, base_dir: Path, where: str) -> None:
    """User name, password and TLS exactly as the daemon's sink sets them: every MQTT client
    (sink, PLC link, probe, `reset`) connects the same way. ValueError for unusable TLS files."""
    if username is not None:
        client.username_pw_set(username, password.get_secret_value() if password else None)
    if tls is not None:
        client.tls_set_context(client_ssl_context(tls, base_dir, where))


def build_client(cfg: MqttSinkConfig, ctx: SinkContext, status_topic: str,
                 where: str) -> RecordingClient:
    """A configured paho client. ValueError (naming `where`) for unusable TLS files."""
    client_id = cfg.client_id or ctx.agent_id
    if cfg.protocol == "5":
        client = RecordingClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                 protocol=mqtt.MQTTv5)
    else:
        client = RecordingClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                 protocol=mqtt.MQTTv311, clean_session=False)
    apply_credentials(client, cfg.username, cfg.password, cfg.tls, ctx.base_dir, where)
    set_will(client, ctx, status_topic)
    client.on_pre_connect = lambda c, _u: set_will(c, ctx, status_topic)
    client.reconnect_delay_set(1, max(1, int(cfg.reconnect_max_s)))
    # a whole outbox batch in flight at once: paho's default window of 20 makes a batch of 50
    # wait for acknowledgements mid-batch (the broker may still cap it with max_inflight)
    client.max_inflight_messages_set(max(20, cfg.outbox.batch_size))
    return client


def describe_connect_error(exc: BaseException | None) -> tuple[str, bool]:
    """(reason, for_good): for_good is True when retrying will not help (TLS, certificates)."""
    if exc is None:
        return "connection failed", False
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message or exc}", True
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}", True
    if isinstance(exc, ssl.CertificateError):
        return f"TLS host name mismatch: {exc}", True
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running and listening on this port?)", False
    if isinstance(exc, TimeoutError):
        return "connection timed out", False
    return f"{type(exc).__name__}: {exc}", False


def describe_connack(reason: ReasonCode) -> tuple[str, bool]:
    """(reason, for_good) for a refused CONNACK."""
    value = int(reason.value)
    if value in REFUSED_FOR_GOOD:
        return f"broker refused the connection: {REFUSED_FOR_GOOD[value]}", True
    return f"broker refused the connection: {reason} (0x{value:02X})", False
