"""A sink's broker connection: what the MQTT and the Sparkplug sink share.

paho runs its own network thread (`loop_start`); every paho callback is handed to the
asyncio loop with `call_soon_threadsafe`, so the state below is only touched on the loop.
Reconnection is paho's, with a capped backoff. The session keeps the sink state the
connection drives: CONNECTED once the broker accepted the CONNECT (the owner may hold it
back, as Sparkplug does until its births), DISCONNECTED while retrying helps, FAILED with
one clear error when it cannot (`refusals`). PUBACKs are handed to the loop in bunches and
settle the `BatchAcks` of the send that waits for them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from agent.logutil import RepeatLimiter
from agent.protocols.base import SinkRejected, SinkState, SinkUnavailable
from agent.protocols.mqtt.acks import BatchAcks
from agent.protocols.mqtt.client import RecordingClient
from agent.protocols.mqtt.refusals import CLOSED_BEFORE_CONNACK, Refusal, connack_refusal

CLOSE_ACK_TIMEOUT_S = 2.0


class SessionOwner(Protocol):
    """The sink on top of a session (called on the loop)."""

    def session_up(self, properties: Any) -> None:
        """The broker accepted the CONNECT (CONNACK properties, MQTT 5)."""

    def session_down(self) -> None:
        """The connection is gone (lost, closed, or refused)."""

    def on_message(self, topic: str, payload: bytes) -> None:
        """A message on a subscribed topic."""


class MqttSession:
    def __init__(self, client: RecordingClient, log: logging.Logger,
                 reconnect_max_s: float) -> None:
        self.client = client
        self.where = client.target.where
        self.log = log
        self.reconnect_max_s = reconnect_max_s
        self.state = SinkState.STARTING
        self.last_error: str | None = None
        self.connects = self.disconnects = self.connect_failures = self.late_acks = 0
        self._owner: SessionOwner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connack_seen = False
        self._pending: dict[int, tuple[BatchAcks, str]] = {}  # mid -> its send's acks, key
        self._untracked: set[int] = set()  # status, telemetry, births: acks not awaited
        # PUBACKs arrive on paho's thread; they are handed to the loop in bunches (one
        # wake-up per bunch, not per message), in arrival order. deque appends and pops are
        # atomic; a drain is posted when none is pending (see _cb_publish / _drain_acks)
        self._acks: deque[tuple[int, ReasonCode]] = deque()
        self._drain_posted = False
        self._refused = RepeatLimiter(log, self.where, logging.ERROR)
        self._link = RepeatLimiter(log, self.where)

    def start(self, owner: SessionOwner, keepalive: int) -> None:
        self._owner = owner
        self._loop = asyncio.get_running_loop()
        c = self.client
        c.on_connect = self._cb_connect
        c.on_connect_fail = self._cb_connect_fail
        c.on_disconnect = self._cb_disconnect
        c.on_publish = self._cb_publish
        c.on_message = self._cb_message
        c.start(keepalive)

    async def stop(self, why: str) -> None:
        """Fail what waits for a PUBACK, disconnect, stop paho's thread."""
        self.fail_pending(why)
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    def why_down(self) -> str:
        return self.last_error or f"not connected ({self.state.value})"

    # ---- publishing and PUBACKs (on the loop) ---------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False,
                properties: Any = None, acks: BatchAcks | None = None, key: str = "") -> int:
        """Publish; with `acks` its PUBACK settles them (under `key`), else nobody waits for
        it. SinkUnavailable when paho cannot take it (not connected, queue full)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise SinkUnavailable(f"{self.where}: publish failed: {mqtt.error_string(info.rc)}")
        if acks is not None:
            acks.add()
            self._pending[info.mid] = (acks, key)
        else:
            self._untracked.add(info.mid)
        return int(info.mid)

    def new_acks(self) -> BatchAcks:
        assert self._loop is not None
        return BatchAcks(self._loop.create_future())

    async def await_acks(self, acks: BatchAcks, mids: list[int], timeout: float) -> None:
        """Every PUBACK of `mids` within `timeout`, else SinkUnavailable (naming the sink).
        What the broker refused is in `acks.refused`."""
        try:
            await asyncio.wait_for(acks.future, timeout)
        except TimeoutError:
            self.forget(mids)
            raise SinkUnavailable(f"{self.where}: {acks.waiting} of {len(mids)} PUBACK(s) "
                                  f"not received within {timeout:g} s") from None
        except asyncio.CancelledError:
            self.forget(mids)
            raise
        except SinkUnavailable as exc:
            raise SinkUnavailable(f"{self.where}: {exc}") from None

    async def publish_last(self, what: str, topic: str, payload: bytes, retain: bool,
                           properties: Any = None) -> None:
        """QoS 1 goodbye (offline status, NDEATH): waits a little for its PUBACK; the Last
        Will covers it if none comes."""
        acks = self.new_acks()
        try:
            mid = self.publish(topic, payload, 1, retain, properties, acks, what)
            await self.await_acks(acks, [mid], CLOSE_ACK_TIMEOUT_S)
        except SinkUnavailable:
            pass
        if acks.acked == 0:
            self.log.warning("%s: %s not acknowledged; the Last Will covers it", self.where, what)

    def forget(self, mids: list[int]) -> None:
        for mid in mids:
            self._pending.pop(mid, None)

    def fail_pending(self, why: str) -> None:
        self._untracked.clear()
        pending, self._pending = self._pending, {}
        for acks, _ in pending.values():
            acks.fail(SinkUnavailable(f"connection lost before PUBACK ({why})"))

    # ---- paho callbacks (network thread) -> loop --------------------------------------

    def post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed between the check and the call
            pass

    def _cb_connect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, props: Any) -> None:
        self.post(self._on_connect, reason, props)

    def _cb_connect_fail(self, _c: Any, _u: Any) -> None:
        self.post(self._on_connect_error)

    def _cb_disconnect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self.post(self._on_disconnect, reason)

    def _cb_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        self._acks.append((mid, reason))
        if not self._drain_posted:  # later acks join this bunch
            self._drain_posted = True
            self.post(self._drain_acks)

    def _cb_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        assert self._owner is not None
        self.post(self._owner.on_message, msg.topic, bytes(msg.payload))

    # ---- on the loop ----------------------------------------------------------------

    def _on_connect(self, reason: ReasonCode, props: Any) -> None:
        if self.state is SinkState.CLOSED:
            return
        self._connack_seen = True
        refusal = connack_refusal(reason)
        if refusal is not None:
            self.refuse(refusal)
            return
        self.state = SinkState.CONNECTED
        self.connects += 1
        self.last_error = None
        self._refused.recovered("connected")
        self._link.recovered("connected")
        self.log.info("%s: connected", self.where)
        assert self._owner is not None
        self._owner.session_up(props)

    def _on_connect_error(self) -> None:
        if self.state is not SinkState.CLOSED:
            self.refuse(self.client.refusal())

    def refuse(self, refusal: Refusal) -> None:
        self.connect_failures += 1
        self.last_error = refusal.reason
        if refusal.for_good:
            self.state = SinkState.FAILED
            self._refused.failure("%s; records stay in the outbox (retrying every %g s)",
                                  refusal.reason, self.reconnect_max_s)
        else:
            self.state = SinkState.DISCONNECTED
            self._link.failure("%s; records stay in the outbox", refusal.reason)

    def _on_disconnect(self, reason: ReasonCode) -> None:
        self.fail_pending(str(reason))
        assert self._owner is not None
        self._owner.session_down()
        if self.state is SinkState.CLOSED:
            return
        if not self._connack_seen and self.client.last_connect_error is None:
            self.refuse(CLOSED_BEFORE_CONNACK)
        elif self.state is SinkState.CONNECTED:
            self.disconnects += 1
            self.state = SinkState.DISCONNECTED
            self.last_error = f"connection lost: {reason}"
            self._link.failure("connection lost (%s); reconnecting", reason)
        elif self.state is not SinkState.FAILED:
            self.state = SinkState.DISCONNECTED
        self._connack_seen = False

    def _drain_acks(self) -> None:
        self._drain_posted = False  # before draining: an ack appended from now on is either
        acks = self._acks           # drained below or posts a new drain
        while acks:
            self._on_ack(*acks.popleft())

    def _on_ack(self, mid: int, reason: ReasonCode) -> None:
        entry = self._pending.pop(mid, None)
        if entry is None and mid in self._untracked:
            self._untracked.discard(mid)
            return
        if entry is None:
            self.late_acks += 1
            return
        entry[0].settle(entry[1], reason)


def refused_by_broker(where: str, refused: dict[str, str], busy: dict[str, str]) -> None:
    """SinkRejected naming the records the broker (or the sink) refused for good, if any
    (the others of the batch are sent again); else SinkUnavailable when the broker said
    "not now" to some (quota exceeded): the batch stays in the outbox."""
    if refused:
        first = next(iter(refused.items()))
        raise SinkRejected(f"{where}: {len(refused)} record(s) refused, first {first[0]}: "
                           f"{first[1]}", list(refused))
    if busy:
        first = next(iter(busy.items()))
        raise SinkUnavailable(f"{where}: {len(busy)} record(s) not taken now, first {first[0]}: "
                              f"{first[1]}")
