"""The retained status flips to `offline` (Last Will) when the agent process is SIGKILLed."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_peer import AGENT, REPO, SITE, subscriber, validate

STATUS = f"edge/{SITE}/agent/{AGENT}/status"

CHILD = textwrap.dedent("""
    import asyncio, sys
    import agent.config
    from pathlib import Path
    from agent.protocols.base import SinkContext, SinkState
    from agent.protocols.mqtt.config import MqttSinkConfig
    from agent.protocols.mqtt.factory import build

    async def main() -> None:
        cfg = MqttSinkConfig(type="mqtt", host="127.0.0.1", port=int(sys.argv[1]),
                             protocol=sys.argv[2], keepalive_s=60)
        sink = build("mes", cfg, SinkContext(sys.argv[3], sys.argv[4], Path("."), Path(".")))
        sink.set_birth({"started": "2026-11-27T09:00:00+00:00"})
        await sink.start()
        while sink.state is not SinkState.CONNECTED:
            await asyncio.sleep(0.02)
        print("ready", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
""")


def run_and_kill(broker: Mosquitto, protocol: str) -> tuple[dict, dict]:
    with subscriber(broker.host, broker.port, STATUS) as sub:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(broker.port), protocol,
                                  SITE, AGENT], cwd=REPO, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            online = sub.next_json(STATUS, timeout=10)
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            offline = sub.next_json(STATUS, timeout=10)  # long before keepalive (60 s)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(10)
            assert child.stdout is not None
            child.stdout.close()
    return online, offline


def test_status_goes_offline_when_process_is_killed(mosquitto: Mosquitto) -> None:
    online, offline = run_and_kill(mosquitto, "5")
    assert online["state"] == "online" and online["started"] == "2026-11-27T09:00:00+00:00"
    assert offline["state"] == "offline" and offline["agent_id"] == AGENT
    validate("status", online)
    validate("status", offline)
    with subscriber(mosquitto.host, mosquitto.port, STATUS) as late:  # retained for newcomers
        assert late.next_json(STATUS)["state"] == "offline"


def test_last_will_with_mqtt_311(mosquitto: Mosquitto) -> None:
    _, offline = run_and_kill(mosquitto, "3.1.1")
    assert offline["state"] == "offline"
    validate("status", offline)
