"""`edge-agent alerts` as a real process against a real broker: table rows and JSON lines
for matching defects only, clean exit on SIGTERM / Ctrl-C, clear errors for bad brokers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt

from agent.commands.alerts import format_row, header
from agent.protocols.base import wire_payload
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_peer import REPO, SITE, broker_conf, defect_record
from tests.support.ports import free_port
from tests.support.tls import make_pki


@contextmanager
def alerts(*args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "agent", "alerts", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            assert stream is not None
            stream.close()


def wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "subscribed to" in line, line


def publish(broker: Mosquitto, *records: object, raw: bytes | None = None) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        if raw is not None:
            c.publish(f"edge/{SITE}/L1/S0/defect", raw, qos=1).wait_for_publish(5)
        for r in records:
            topic = f"edge/{SITE}/{r.line}/{r.station}/defect"  # type: ignore[attr-defined]
            body = json.dumps(wire_payload(r))  # type: ignore[arg-type]
            c.publish(topic, body, qos=1).wait_for_publish(5)
    finally:
        c.disconnect()
        c.loop_stop()


def test_table_for_one_line_and_clean_sigterm(mosquitto: Mosquitto) -> None:
    with alerts("--port", str(mosquitto.port), "--line", "L1") as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().rstrip("\n") == header()
        wait_ready(proc)
        other, mine = defect_record("L2", "S1", 0.5), defect_record("L1", "S3", 0.934, code=17)
        publish(mosquitto, other, mine, raw=b"{broken")
        row = proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        rest = proc.stdout.read()
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert row.startswith("L1/S3") and "scratch (17)" in row and "0.934" in row
    assert "15.5 ms" in row
    assert rest == ""  # the L2 defect was filtered out
    assert "malformed message" in err


def test_json_lines_and_ctrl_c(mosquitto: Mosquitto) -> None:
    with alerts("--port", str(mosquitto.port), "--json", "--station", "S9") as proc:
        wait_ready(proc)
        rec = defect_record("L4", "S9")
        publish(mosquitto, rec)
        assert proc.stdout is not None
        got = json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    assert got == wire_payload(rec)


def test_unreachable_broker_is_named(tmp_path: Path) -> None:
    port = free_port()
    with alerts("--port", str(port)) as proc:
        assert proc.wait(20) == 1
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert f"cannot connect to broker 127.0.0.1:{port}" in err


def test_password_auth_and_refusal(tmp_path: Path) -> None:
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "ops", "right"], check=True)
    broker = Mosquitto(tmp_path, extra_conf=broker_conf(f"password_file {pw}")).start()
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("right\n")
    bad.write_text("wrong\n")
    try:
        with alerts("--port", str(broker.port), "--username", "ops", "--password-file",
                    str(bad)) as proc:
            assert proc.wait(20) == 1
            assert proc.stderr is not None
            assert "refused" in proc.stderr.read()
        with alerts("--port", str(broker.port), "--username", "ops", "--password-file",
                    str(good), "--json") as proc:
            wait_ready(proc)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
    finally:
        broker.stop()


def test_row_format_flags() -> None:
    r = defect_record()
    row = format_row({**wire_payload(r), "replayed": True, "budget_exceeded": True})
    assert row.endswith("[replayed, over budget]")
    assert format_row({}).startswith("?/?")


def test_config_follows_the_daemon_sink_tls_and_topics(tmp_path: Path) -> None:
    """--config: the sink's broker, TLS with `verify: false` and its `topics:` override."""
    pki = make_pki(tmp_path / "pki")
    broker = Mosquitto(tmp_path, extra_conf=broker_conf(pki.mosquitto_conf())).start()
    cfg = {
        "site": SITE, "agent_id": "edge1", "state_dir": str(tmp_path / "state"),
        "cameras": {"cam1": {"type": "synthetic"}},
        "models": {"m": {"path": str(REPO / "models" / "defect-cnn")}},
        "sinks": {"mes": {"type": "mqtt", "host": broker.host, "port": broker.port,
                          "tls": {"verify": False},
                          "topics": {"defect": "plant-x/{line}/{station}/defects"}}},
        "lines": {"L1": {"stations": {"S1": {"camera": "cam1", "model": "m",
                                             "sinks": ["mes"]}}}},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(json.dumps(cfg))
    rec = defect_record("L1", "S1")
    try:
        with alerts("--config", str(path), "--json", "--line", "L1") as proc:
            wait_ready(proc)
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            c.tls_set(ca_certs=str(pki.ca))
            c.connect(broker.host, broker.port)
            c.loop_start()
            try:
                for topic in ("edge/plant1/L1/S1/defect", "plant-x/L1/S1/defects"):
                    body = json.dumps({**wire_payload(rec), "topic": topic})
                    c.publish(topic, body, qos=1).wait_for_publish(5)
            finally:
                c.disconnect()
                c.loop_stop()
            assert proc.stdout is not None
            got = json.loads(proc.stdout.readline())
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
            rest = proc.stdout.read()
    finally:
        broker.stop()
    assert got["topic"] == "plant-x/L1/S1/defects"  # the override, not the default tree
    assert rest == ""
