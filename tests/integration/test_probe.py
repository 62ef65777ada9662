"""`edge-agent probe` against the soft PLC (Modbus + OPC UA) and a real Mosquitto:
OK/FAIL per signal, a missing node and an out-of-range address named, MQTT publish
permission refused by the broker ACL, and the test defect sent end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as mqtt

from agent.commands.probe import run_probe
from agent.configfile import load_config
from plc.softplc import SoftPlc
from tests.conftest import REPO
from tests.integration.plc_helpers import STATION, TAGS
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port, wait_port


def write_config(tmp: Path, mport: int, endpoint: str, broker_port: int,
                 bad: bool = True) -> Path:
    mb = TAGS.signals(STATION, "modbus")
    ua_sig = TAGS.signals(STATION, "opcua")
    for s in ("trigger", "part_id", "busy", "done", "result", "result_code", "result_part_id"):
        mb.pop(s)
        ua_sig.pop(s)
    if bad:
        mb["alarm"] = "coil:999"  # nothing there: the PLC answers illegal data address
        ua_sig["alarm"] = "ns=2;s=Line1.Station1.NoSuchAlarm"
    cfg = {
        "site": "plant", "agent_id": "edge1", "state_dir": str(tmp / "state"),
        "cameras": {"cam1": {"type": "synthetic"}},
        "models": {"m": {"path": str(REPO / "models" / "defect-cnn")}},
        "plcs": {
            "mb": {"type": "modbus", "host": "127.0.0.1", "port": mport,
                   "heartbeat": {"counter": "hr:0", "status": "hr:1"}, "reset": "coil:8"},
            "ua": {"type": "opcua", "endpoint": endpoint, "timeout_ms": 1000},
        },
        "sinks": {"mqtt": {"type": "mqtt", "host": "127.0.0.1", "port": broker_port},
                  "drop": {"type": "file", "dir": str(tmp / "drop")}},
        "lines": {"line1": {"stations": {
            "station1": {"camera": "cam1", "model": "m", "plc": "mb", "signals": mb,
                         "sinks": ["mqtt", "drop"]},
            "station2": {"camera": "cam1", "model": "m", "plc": "ua", "signals": ua_sig,
                         "sinks": ["mqtt"]},
        }}},
    }
    path = tmp / "agent.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


async def test_probe_table_names_each_failure(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite edge/plant/line1/station1/#\n")  # station2 may not publish
    # `user root`: mosquitto started as root would drop to a user that cannot read tmp_path
    broker = Mosquitto(tmp_path, extra_conf=f"user root\nacl_file {acl}").start()
    plc = SoftPlc(TAGS, modbus_port=free_port(), opcua_port=free_port())
    await plc.start()
    try:
        path = write_config(tmp_path, plc.modbus_port or 0, plc.opcua_endpoint, broker.port)
        rows = await run_probe(load_config(path), ("line1", "station1"), 65535, False, 10.0)
    finally:
        await plc.stop()
        broker.stop()
    by = {(r.target, r.signal): r for r in rows}
    assert by[("mb", "connect")].ok and by[("ua", "connect")].ok
    for sig in ("stop_request", "reject", "defect_code", "defect_count", "last_event_seq"):
        assert by[("mb", f"line1/station1 {sig}")].ok
        assert by[("ua", f"line1/station2 {sig}")].ok
    assert by[("mb", "heartbeat")].ok and by[("mb", "reset")].ok
    bad_mb = by[("mb", "line1/station1 alarm")]
    assert not bad_mb.ok and bad_mb.address == "coil:999" and "illegal data address" in bad_mb.detail
    bad_ua = by[("ua", "line1/station2 alarm")]
    assert not bad_ua.ok and "BadNodeIdUnknown" in bad_ua.detail
    assert "UInt16" in by[("ua", "line1/station2 defect_code")].detail
    pubs = [r for r in rows if r.target == "mqtt" and r.signal == "publish"]
    ok_topics = {r.address for r in pubs if r.ok}
    assert ok_topics == {"edge/plant/line1/station1/probe", "edge/plant/line1/station1/defect"}
    denied = [r for r in pubs if not r.ok]
    assert [r.address for r in denied] == ["edge/plant/line1/station2/probe"]
    assert "refused" in denied[0].detail
    assert by[("drop", "write")].ok
    injected = by[("mb", "line1/station1 test defect")]
    assert injected.ok and plc.state.get(f"{STATION}.defect_code") == 65535
    assert plc.state.get(f"{STATION}.stop_request") is False  # probe never actuates unasked


def test_probe_cli_with_python_m_plc(tmp_path: Path, mosquitto: Mosquitto) -> None:
    mport, oport = free_port(), free_port()
    sim = subprocess.Popen([sys.executable, "-m", "plc", "--modbus-port", str(mport),
                            "--opcua-port", str(oport), "--quiet"], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    got: list[dict] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda _c, _u, m: got.append(json.loads(m.payload))
    try:
        wait_port(mport, 20)
        wait_port(oport, 20)
        sub.connect("127.0.0.1", mosquitto.port)
        sub.subscribe("edge/plant/line1/station1/defect", qos=1)
        sub.loop_start()
        endpoint = f"opc.tcp://127.0.0.1:{oport}/edge-agent/softplc"
        path = write_config(tmp_path, mport, endpoint, mosquitto.port, bad=False)
        out = subprocess.run(
            [sys.executable, "-m", "agent", "probe", str(path), "--inject-test-defect",
             "line1/station1", "--actuate"], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "FAIL" not in out.stdout.split("\n\n")[0]
        assert "line1/station1 test stop" in out.stdout and "acked in" in out.stdout
        deadline = 50
        while not got and deadline:
            subprocess.run(["sleep", "0.1"])
            deadline -= 1
        assert got and got[0]["test"] is True and got[0]["defect_code"] == 65535
    finally:
        sub.loop_stop()
        sim.terminate()
        sim.wait(10)
