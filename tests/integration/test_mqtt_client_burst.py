"""The paho client under the MQTT sink, against a real Mosquitto: a burst of publishes wakes
paho's network thread once, and the in-flight window is refilled without walking it."""

from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from agent.protocols.mqtt.client import RecordingClient
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_peer import subscriber

TOPIC = "edge/burst/records"


class CountingWake:
    """Stands in for paho's wake-up socket and counts the wake-ups sent through it."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.sends = 0

    def send(self, data: bytes) -> int:
        self.sends += 1
        return int(self.real.send(data))

    def close(self) -> None:
        self.real.close()


def connected_client(broker: Mosquitto, inflight: int) -> tuple[RecordingClient, list[int],
                                                                 threading.Event]:
    client = RecordingClient(mqtt.CallbackAPIVersion.VERSION2, client_id="burst",
                             protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(inflight)
    acked: list[int] = []
    connected = threading.Event()
    client.on_publish = lambda c, u, mid, rc, p: acked.append(mid)
    client.on_connect = lambda c, u, f, rc, p: connected.set()
    client.connect(broker.host, broker.port, 30)
    client.loop_start()
    assert connected.wait(10), "no CONNACK"
    return client, acked, connected


def wait_for(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def publish_burst(client: RecordingClient, n: int, held: bool) -> list[int]:
    def burst() -> list[int]:
        return [client.publish(TOPIC, str(i).encode(), qos=1).mid for i in range(n)]
    if not held:
        return burst()
    with client.one_wakeup():
        return burst()


def test_burst_wakes_the_network_thread_once_and_arrives_whole_in_order(
        mosquitto: Mosquitto) -> None:
    with subscriber(mosquitto.host, mosquitto.port, TOPIC) as sub:
        client, acked, _ = connected_client(mosquitto, 200)
        try:
            wake = CountingWake(client._sockpairW)
            client._sockpairW = wake  # type: ignore[assignment]
            plain = publish_burst(client, 50, held=False)
            assert wake.sends == 50  # paho's own behaviour: one wake-up per packet
            wait_for(lambda: len(acked) == 50)
            wake.sends = 0
            held = publish_burst(client, 150, held=True)
            assert wake.sends == 1
            wait_for(lambda: len(acked) == 200)
            assert sorted(acked) == sorted(plain + held)
            got = [int(sub.next(TOPIC).payload) for _ in range(200)]
            assert got == list(range(50)) + list(range(150))
        finally:
            client.disconnect()
            client.loop_stop()


def test_publishes_beyond_the_window_are_still_sent_in_order_after_acks(
        mosquitto: Mosquitto) -> None:
    """The shortcut only skips the walk when nothing is queued behind the window."""
    with subscriber(mosquitto.host, mosquitto.port, TOPIC) as sub:
        client, acked, _ = connected_client(mosquitto, 3)
        try:
            with client.one_wakeup():
                mids = [client.publish(TOPIC, str(i).encode(), qos=1).mid for i in range(40)]
            wait_for(lambda: len(acked) == 40)
            assert acked == mids  # PUBACKs in order: queued ones went out as the window freed
            assert [int(sub.next(TOPIC).payload) for _ in range(40)] == list(range(40))
        finally:
            client.disconnect()
            client.loop_stop()


class CountingValues(dict[int, Any]):
    walks = 0

    def values(self) -> Any:  # type: ignore[override]
        CountingValues.walks += 1
        return super().values()


def test_window_refill_does_not_walk_the_window_when_nothing_is_queued(
        mosquitto: Mosquitto) -> None:
    client, acked, _ = connected_client(mosquitto, 500)
    try:
        client._out_messages = CountingValues()  # type: ignore[assignment]
        CountingValues.walks = 0
        with client.one_wakeup():
            for i in range(300):
                client.publish(TOPIC, str(i).encode(), qos=1)
        wait_for(lambda: len(acked) == 300)
        assert CountingValues.walks == 0  # paho alone walks the window once per PUBACK
    finally:
        client.disconnect()
        client.loop_stop()


def test_packets_held_while_not_started_are_written_by_paho_as_usual(
        mosquitto: Mosquitto) -> None:
    """Without paho's network thread (no loop_start) nothing is held back: paho writes."""
    client = RecordingClient(mqtt.CallbackAPIVersion.VERSION2, client_id="nothread",
                             protocol=mqtt.MQTTv5)
    with subscriber(mosquitto.host, mosquitto.port, TOPIC) as sub:
        client.connect(mosquitto.host, mosquitto.port, 30)
        with client.one_wakeup():
            client.publish(TOPIC, b"7", qos=0)
        assert client._out_packet == type(client._out_packet)()  # written at once
        assert sub.next(TOPIC).payload == b"7"
        client.disconnect()


def test_what_was_read_is_acknowledged_at_once(mosquitto: Mosquitto,
                                               monkeypatch: Any) -> None:
    """After each read paho's socket is set to TCP_QUICKACK (Linux): a broker with Nagle on
    then sends the next PUBACK segment without waiting for our delayed ACK."""
    import socket

    calls: list[tuple[int, int, int]] = []
    real = socket.socket.setsockopt

    def spy(sock: socket.socket, level: int, opt: int, value: Any) -> None:
        calls.append((level, opt, value))
        real(sock, level, opt, value)
    client, acked, _ = connected_client(mosquitto, 100)
    try:
        monkeypatch.setattr(socket.socket, "setsockopt", spy)
        with client.one_wakeup():
            for i in range(20):
                client.publish(TOPIC, str(i).encode(), qos=1)
        wait_for(lambda: len(acked) == 20)
    finally:
        monkeypatch.undo()
        client.disconnect()
        client.loop_stop()
    assert (socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1) in calls
