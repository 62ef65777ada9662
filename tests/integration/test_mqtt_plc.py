"""Commands to a PLC that subscribes to MQTT: retained QoS 1 writes with message expiry,
never late; reset read from the PLC's retained topic. Real Mosquitto (MQTT 5)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from agent.config.station import StationSignals
from agent.control.dispatcher import CommandDispatcher
from agent.control.reset_watch import ResetWatch
from agent.protocols.base import SinkContext
from agent.protocols.mqtt.factory import build_plc as build
from agent.protocols.mqtt.plc_config import MqttPlcConfig
from agent.types import CommandKind, CommandOutcome, OutcomeStatus
from tests.integration.plc_helpers import command, wait_for
from tests.support.mosquitto import Mosquitto

KEY = ("line1", "station1")
T = "plant/line1/station1/"
SIGNALS = StationSignals(stop_request=T + "stop_request", defect_code=T + "defect_code",
                         reject=T + "reject")


class PlcSubscriber:
    """The PLC's side: an MQTT 5 client subscribed to the station's topics."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, Any, bool, int | None]] = []
        self._ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plc",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(T + "#", qos=1)
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._ready.wait(5)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        expiry = getattr(msg.properties, "MessageExpiryInterval", None)
        self.messages.append((msg.topic.removeprefix(T), json.loads(msg.payload)["value"],
                              bool(msg.retain), expiry))

    def publish(self, topic: str, value: Any) -> None:
        self.client.publish(T + topic, json.dumps({"value": value}), qos=1,
                            retain=True).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def link_for(port: int, tmp_path: Path) -> Any:
    cfg = MqttPlcConfig(type="mqtt", host="127.0.0.1", port=port, reconnect_initial_ms=50,
                        reconnect_max_ms=200, connect_timeout_ms=1000)
    return build("plc1", cfg, SinkContext("site", "agent", tmp_path, tmp_path))


async def test_stop_published_retained_with_expiry_and_acked(tmp_path: Path,
                                                             mosquitto: Mosquitto) -> None:
    plc = PlcSubscriber(mosquitto.port)
    link = link_for(mosquitto.port, tmp_path)
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, {KEY: SIGNALS}, outcomes.append)
    await link.start()
    await disp.start()
    try:
        assert await link.wait_connected(5)
        disp.submit(command(CommandKind.STOP, deadline_s=1.5, code=301))
        await wait_for(lambda: outcomes, what="stop outcome")
        assert outcomes[0].status is OutcomeStatus.ACKED
        await wait_for(lambda: any(m[0] == "stop_request" for m in plc.messages), what="stop")
        got = {m[0]: m for m in plc.messages}
        assert got["stop_request"][1] == 1 and got["defect_code"][1] == 301
        # expiry = the command's remaining time, in whole seconds: never later than that
        assert got["stop_request"][3] is not None and 1 <= got["stop_request"][3] <= 2
        assert link.stats().writes >= 2
    finally:
        await disp.stop()
        await link.close()
        plc.close()


async def test_stop_while_broker_down_is_never_published_later(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)
    link = link_for(broker.port, tmp_path)
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, {KEY: SIGNALS}, outcomes.append)
    await link.start()
    await disp.start()
    plc = None
    try:
        disp.submit(command(CommandKind.STOP, deadline_s=0.3))
        await wait_for(lambda: outcomes, what="outcome")
        assert outcomes[0].status in (OutcomeStatus.FAILED, OutcomeStatus.EXPIRED)
        broker.start()
        assert await link.wait_connected(5)
        plc = PlcSubscriber(broker.port)
        await asyncio.sleep(1.0)
        late = [m for m in plc.messages if m[0] != "reject" or m[1] != 0]  # reject kept low
        assert late == [], "a stop past its deadline reached the PLC"
    finally:
        await disp.stop()
        await link.close()
        if plc is not None:
            plc.close()
        broker.stop()


async def test_a_retained_stop_expires_for_a_plc_that_comes_late(tmp_path: Path,
                                                                 mosquitto: Mosquitto) -> None:
    link = link_for(mosquitto.port, tmp_path)
    await link.start()
    try:
        assert await link.wait_connected(5)
        await link.write(T + "stop_request", 1, 0.2)  # expiry 1 s
        await asyncio.sleep(2.2)
        plc = PlcSubscriber(mosquitto.port)  # connects after the expiry
        await asyncio.sleep(0.5)
        plc.close()
        assert plc.messages == []
        fresh = PlcSubscriber(mosquitto.port)
        await link.write(T + "stop_request", 0, 2.0)
        await wait_for(lambda: fresh.messages, what="fresh value")
        fresh.close()
        assert fresh.messages[0][:2] == ("stop_request", 0)
    finally:
        await link.close()


async def test_reset_read_from_the_plc_topic(tmp_path: Path, mosquitto: Mosquitto) -> None:
    plc = PlcSubscriber(mosquitto.port)
    link = link_for(mosquitto.port, tmp_path)
    resets: list[str] = []
    watch = ResetWatch(link, T + "reset", resets.append, poll_ms=20)
    await link.start()
    await watch.start()
    try:
        assert await link.wait_connected(5)
        plc.publish("reset", False)
        await asyncio.sleep(0.3)
        plc.publish("reset", True)
        await wait_for(lambda: resets == ["plc1"], what="reset edge")
        # the reads never hold a stop back: a write goes through while the reset is polled
        t0 = time.monotonic()
        await link.write(T + "stop_request", 1, 1.0)
        assert time.monotonic() - t0 < 1.0
    finally:
        await watch.stop()
        await link.close()
        plc.close()


@pytest.mark.parametrize("topic", ["plant/+/stop", "plant/#", "$SYS/x", ""])
def test_wildcard_or_system_topics_are_refused_by_config(tmp_path: Path, topic: str) -> None:
    from agent.configfile import ConfigError, parse_config

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(b"x")
    text = f"""
site: s
agent_id: a
cameras: {{c: {{type: synthetic}}}}
models: {{m: {{path: m}}}}
plcs: {{p: {{type: mqtt, host: 127.0.0.1}}}}
lines: {{l: {{stations: {{s: {{camera: c, model: m, plc: p, signals: {{stop_request: "{topic}"}}}}}}}}}}
"""
    with pytest.raises(ConfigError) as err:
        parse_config(text, "t.yaml", tmp_path, {})
    assert "lines.l.stations.s.signals.stop_request" in str(err.value)
    assert "bad MQTT topic" in str(err.value)
