"""The one builder of the agent's MQTT clients, and the clients it builds.

`build_mqtt_client` makes the paho client of every MQTT user of the agent (the MQTT and
Sparkplug sinks, the MQTT PLC link, `probe`, `reset` and `alerts`) the same way: protocol
(3.1.1 or 5) and session, user name and password, TLS (agent.protocols.tls_context: `verify:
false` means the same everywhere), the Last Will where the caller asks for one (set again
before every CONNECT), and paho's reconnect backoff. Why a connection failed, and whether
retrying can help, is read through the one table in `refusals`; `connect_and_wait` is the
blocking first connect of the commands.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers
from typing_extensions import TypeVar  # a TypeVar with a default (PEP 696)

from agent.protocols.mqtt.refusals import (
    CLOSED_BEFORE_CONNACK,
    Refusal,
    connack_refusal,
    describe_connect_error,
)
from agent.protocols.tls_context import client_ssl_context

if TYPE_CHECKING:
    from pathlib import Path

    from agent.protocols.mqtt.broker import BrokerConnection

_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
MqttVersion = Literal["3.1.1", "5"]


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


@dataclass(frozen=True)
class Will:
    """A Last Will. `json`: MQTT 5 properties say the payload is UTF-8 JSON."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    json: bool = False


@dataclass(frozen=True)
class Target:
    """Where and how a built client connects (`MqttClient.start`)."""

    host: str
    port: int
    where: str  # "mqtt sink 'mes' (broker host:port)": names the client in every message
    clean: bool
    properties: Properties | None  # MQTT 5 CONNECT properties (session expiry)


class MqttClient(mqtt.Client):
    """paho client that knows its broker and remembers why the last connection attempt
    failed (paho's on_connect_fail callback does not say)."""

    last_connect_error: BaseException | None = None
    target: Target

    def start(self, keepalive: int) -> None:
        """Connect in paho's network thread (callbacks report the outcome)."""
        t = self.target
        self.connect_async(t.host, t.port, keepalive, clean_start=t.clean,
                           properties=t.properties)
        self.loop_start()

    def reconnect(self) -> mqtt.MQTTErrorCode:
        try:
            rc = super().reconnect()
        except OSError as exc:
            self.last_connect_error = exc
            raise
        self.last_connect_error = None
        return rc

    def refusal(self) -> Refusal:
        """Why the last connect attempt failed (no CONNACK)."""
        return describe_connect_error(self.last_connect_error)


class RecordingClient(MqttClient):
    """The sinks' client: changes three of paho's habits that cost more than the outbox
    itself when a batch of records is in flight: a wake-up of the
    network thread per publish (`one_wakeup`), a walk of the in-flight window per PUBACK
    (`_update_inflight`) and delayed ACKs of what it reads (`loop_read`)."""

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


C = TypeVar("C", bound=MqttClient, default=MqttClient)


def build_mqtt_client(broker: BrokerConnection, where: str, base_dir: Path, *, client_id: str,
                      protocol: MqttVersion = "5", clean: bool = True,
                      session_expiry_s: int | None = None, will: Callable[[], Will] | None = None,
                      reconnect_max_s: float | None = None, max_inflight: int | None = None,
                      client_class: type[C] = MqttClient,  # type: ignore[assignment]
                      ) -> C:
    """A configured paho client of `client_class`, not connected (`start` connects).

    `clean`: no session kept (3.1.1 clean session, MQTT 5 clean start); `session_expiry_s`:
    MQTT 5 session expiry. `will` is called before every CONNECT (a fresh Will each time).
    `reconnect_max_s`: paho reconnects with a backoff capped there; None: never (one
    connection per client). ValueError (naming `where`) for unusable TLS files."""
    session: dict[str, Any] = ({"protocol": mqtt.MQTTv5} if protocol == "5" else
                               {"protocol": mqtt.MQTTv311, "clean_session": clean})
    client = client_class(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                          reconnect_on_failure=reconnect_max_s is not None, **session)
    client.target = Target(broker.host, broker.port, where, clean,
                           connect_properties(protocol, session_expiry_s))
    if broker.username is not None:
        password = broker.password.get_secret_value() if broker.password else None
        client.username_pw_set(broker.username, password)
    if broker.tls is not None:
        client.tls_set_context(client_ssl_context(broker.tls, base_dir, where))
    if will is not None:
        client.on_pre_connect = lambda c, _u: _set_will(c, will())
    if reconnect_max_s is not None:
        client.reconnect_delay_set(1, max(1, int(reconnect_max_s)))
    if max_inflight is not None:
        client.max_inflight_messages_set(max_inflight)
    return client


def _set_will(client: mqtt.Client, will: Will) -> None:
    props: Properties | None = None
    if is_v5(client):
        props = publish_properties(None) if will.json else Properties(PacketTypes.WILLMESSAGE)
    client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain, properties=props)


def connect_properties(protocol: MqttVersion, session_expiry_s: int | None) -> Properties | None:
    if protocol != "5" or session_expiry_s is None:
        return None
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry_s
    return props


def connect_and_wait(client: MqttClient, keepalive: int, timeout: float,
                     then: Callable[[MqttClient], object] | None = None,
                     retry: bool = False) -> Refusal | None:
    """The commands' first connect (blocking): None once the broker accepted it (`then(client)`
    ran in paho's thread, before this returns), else why not. The network loop runs on;
    the caller stops it (after a refusal, at once: paho does not retry). Build the client
    with `reconnect_max_s`: paho answers a 3.1.1 "unacceptable protocol version" by trying
    3.1 (whose refusal is the one reported), only on a client that may reconnect.
    `retry`: a refusal retrying can fix (broker down or restarting, server unavailable) lets
    paho try again with its backoff until `timeout`, then the last one is reported."""
    done = threading.Event()
    outcome: list[Refusal | None] = [None]
    last: list[Refusal | None] = [None]
    deadline = time.monotonic() + timeout

    def settle(refusal: Refusal | None) -> None:
        if done.is_set():
            return
        if retry and refusal is not None and not refusal.for_good \
                and time.monotonic() < deadline:
            last[0] = refusal  # paho connects again after its backoff
            return
        outcome[0] = refusal
        if refusal is None and then is not None:
            then(client)
        elif refusal is not None:
            client.disconnect()  # no retry: paho's thread ends at once
        done.set()

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        settle(connack_refusal(reason))

    def on_connect_fail(_c: Any, _u: Any) -> None:
        settle(client.refusal())

    def on_disconnect(_c: Any, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        if last[0] is not None:  # the hang-up after a refused CONNACK we are retrying
            return
        # hung up without a CONNACK (after a failed connect: on_connect_fail said why)
        settle(client.refusal() if client.last_connect_error else CLOSED_BEFORE_CONNACK)

    client.on_connect = on_connect
    client.on_connect_fail = on_connect_fail
    client.on_disconnect = on_disconnect
    client.start(keepalive)
    if not done.wait(timeout):
        done.set()
        client.disconnect()
        return last[0] or Refusal(f"no CONNACK within {timeout:g} s", False)
    return outcome[0]


def is_v5(client: mqtt.Client) -> bool:
    return bool(client.protocol == mqtt.MQTTv5)


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
