"""`edge-agent reset` believes only the agent: with no daemon running, a spoofer that
answers every command on `cmd/result` (unsigned, or with a made-up mac) gets "no answer"
and exit 1, where it used to get "accepted" and exit 0."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from tests.e2e.harness import write_config
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_peer import Subscriber
from tests.support.ports import free_port

CMD = "edge/e2e/agent/edge-e2e/cmd"
KEY = "4b1d9e0c7a2f3e5d6c8b9a0f1e2d3c4b"


class Spoofer(Subscriber):
    """Answers each command it sees as the agent would, without the key."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port, [CMD])
        self.answered = 0
        self.client.on_message = self._answer

    def _answer(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        cmd = json.loads(msg.payload)
        base = {"schema_version": 1, "id": cmd["id"], "accepted": True, "reason": "accepted",
                "command": cmd["command"], "time": cmd["time"]}
        for answer in (base, {**base, "kid": cmd["kid"], "mac": cmd["mac"]},
                       {**base, "kid": cmd["kid"], "mac": "0" * 64}):
            client.publish(CMD + "/result", json.dumps(answer), qos=1)
        self.answered += 1


def test_reset_with_no_daemon_trusts_no_spoofed_answer(tmp_path: Path,
                                                       mosquitto: Mosquitto) -> None:
    (tmp_path / "cmd-key").write_text(KEY + "\n")
    cfg = write_config(tmp_path, mqtt_port=mosquitto.port, modbus_port=free_port(),
                       mqtt_extra={"commands": {"enabled": True, "key": "${file:cmd-key}"}})
    spoofer = Spoofer(mosquitto.host, mosquitto.port).start()
    try:
        out = subprocess.run([sys.executable, "-m", "agent", "reset", "--config", str(cfg),
                              "--line", "line1", "--station", "station1", "--timeout", "2"],
                             capture_output=True, text=True, timeout=30)
    finally:
        spoofer.stop()
    assert spoofer.answered == 1
    assert out.returncode == 1, out
    assert "accepted" not in out.stdout and "no answer" in out.stderr, out
    assert "3 unauthenticated answer(s) ignored" in out.stderr, out


def test_reset_waits_for_a_broker_that_is_restarting(tmp_path: Path) -> None:
    """Connection refused at first (the broker restarting): `reset` tries again until its
    --timeout, where it used to give up at once with "not sent"."""
    (tmp_path / "cmd-key").write_text(KEY + "\n")
    port = free_port()
    cfg = write_config(tmp_path, mqtt_port=port, modbus_port=free_port(),
                       mqtt_extra={"commands": {"enabled": True, "key": "${file:cmd-key}"}})
    proc = subprocess.Popen([sys.executable, "-m", "agent", "reset", "--config", str(cfg),
                             "--line", "line1", "--station", "station1", "--timeout", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    broker = Mosquitto(tmp_path, port=port)
    try:
        time.sleep(1.5)  # refused until the broker is up
        assert proc.poll() is None, proc.communicate()
        broker.start()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        broker.stop()
    assert "not sent" not in err, err
    assert "no answer from agent" in err and proc.returncode == 1, (out, err)  # no daemon runs
