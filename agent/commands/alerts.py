"""Subscribe to a broker and show defect alerts live: one table row per defect (station,
defect, score, time, latency), or the payloads as JSON lines with --json. Ctrl-C or
SIGTERM stops it cleanly (exit 0); a broker that cannot be reached or refuses the
connection is reported with the reason (exit 1). With --config it follows the daemon's MQTT
sink: same broker, credentials, TLS and topics (the one client builder and TopicMap)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import uuid
from pathlib import Path
from types import FrameType
from typing import Any, Literal, NamedTuple, TextIO

import paho.mqtt.client as mqtt
from pydantic import SecretStr

from agent.commands import load_or_report
from agent.protocols.mqtt.broker import BrokerConnection
from agent.protocols.mqtt.client import MqttClient, build_mqtt_client, connect_and_wait
from agent.protocols.mqtt.config import MqttSinkConfig
from agent.protocols.mqtt.factory import topic_map
from agent.protocols.mqtt.refusals import Refusal, connack_refusal
from agent.protocols.mqtt.topics import alert_filter
from agent.protocols.tls import TlsConfig

COLUMNS = (("STATION", 22), ("DEFECT", 22), ("SCORE", 6), ("TIME (UTC)", 23), ("LATENCY", 10))
CONNECT_TIMEOUT_S = 10.0
RECONNECT_MAX_S = 30


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="broker port (1883, or 8883 with TLS)")
    p.add_argument("--tls", action="store_true", help="TLS, verified against the system store")
    p.add_argument("--tls-ca", metavar="FILE", type=Path, help="TLS, verified against this CA")
    p.add_argument("--username", help="user name")
    p.add_argument("--password-file", metavar="FILE", type=Path,
                   help="file holding the password (never on the command line)")
    p.add_argument("--prefix", default="edge", help="first topic level (default edge)")
    p.add_argument("--site", help="only this site")
    p.add_argument("--line", help="only this line")
    p.add_argument("--station", help="only this station")
    p.add_argument("--json", action="store_true", help="print each payload as a JSON line")
    p.add_argument("--config", "-c", metavar="FILE",
                   help="the daemon's YAML config: broker, credentials, TLS, site and defect "
                        "topics (`topics:` overrides included) of its MQTT sink; the broker "
                        "options and --prefix/--site above are then not used")
    p.add_argument("--sink", help="with --config: the MQTT sink to follow (default: the first)")


def header() -> str:
    return "  ".join(name.ljust(width) for name, width in COLUMNS).rstrip()


def _fmt(value: Any, fmt: str) -> str:
    try:
        return format(value, fmt)
    except (TypeError, ValueError):
        return "-"


def format_row(p: dict[str, Any]) -> str:
    """One table row for a defect payload (agent.decision.payloads.DefectPayload)."""
    station = f"{p.get('line', '?')}/{p.get('station', '?')}"
    defect = f"{p.get('defect_class', '?')} ({p.get('defect_code', '?')})"
    latency = (p.get("latency") or {}).get("total_ms") if isinstance(p.get("latency"), dict) \
        else None
    lat = f"{_fmt(latency, '.1f')} ms" if latency is not None else "-"
    when = str(p.get("time", "-")).replace("T", " ")[:23]
    cells = [station, defect, _fmt(p.get("score"), ".3f"), when, lat]
    row = "  ".join(c.ljust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)).rstrip()
    flags = [f for f, on in (("replayed", p.get("replayed")),
                             ("over budget", p.get("budget_exceeded"))) if on]
    return row + (f"  [{', '.join(flags)}]" if flags else "")


class AlertPrinter:
    def __init__(self, as_json: bool, out: TextIO, err: TextIO) -> None:
        self.as_json = as_json
        self.out = out
        self.err = err
        self.bad = 0

    def message(self, topic: str, raw: bytes) -> None:
        try:
            payload = json.loads(raw)
            if not isinstance(payload, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            self.bad += 1
            print(f"edge-agent alerts: ignored a malformed message on {topic}: {exc}",
                  file=self.err, flush=True)
            return
        line = json.dumps(payload, separators=(",", ":")) if self.as_json else format_row(payload)
        print(line, file=self.out, flush=True)


class Target(NamedTuple):
    broker: BrokerConnection
    base_dir: Path  # relative TLS file names resolve against it
    protocol: Literal["3.1.1", "5"]
    topic: str  # the subscription filter


def _from_options(args: argparse.Namespace) -> Target:
    port = args.port or (8883 if (args.tls or args.tls_ca) else 1883)
    password = (SecretStr(args.password_file.read_text().rstrip("\r\n"))
                if args.password_file else None)
    tls = TlsConfig(ca_file=str(args.tls_ca)) if args.tls_ca else TlsConfig() if args.tls else None
    broker = BrokerConnection(host=args.host, port=port, username=args.username or None,
                              password=password, tls=tls)
    return Target(broker, Path.cwd(), "5",
                  alert_filter(args.prefix, args.site, args.line, args.station))


def _from_config(args: argparse.Namespace) -> Target | None:
    """The broker, credentials, TLS and defect topics of the daemon's MQTT sink."""
    loaded = load_or_report(args.config)
    if loaded is None:
        return None
    cfg = loaded.config
    sinks = {n: s for n, s in cfg.sinks.items() if isinstance(s, MqttSinkConfig)}
    sc = sinks.get(args.sink or next(iter(sinks), ""))
    if sc is None:
        print(f"{args.config}: no MQTT sink{f' {args.sink!r}' if args.sink else ''} "
              f"(MQTT sinks: {', '.join(sinks) or 'none'})", file=sys.stderr)
        return None
    topics = topic_map(sc, cfg.site, cfg.agent_id)
    return Target(sc, loaded.base_dir, sc.protocol,
                  topics.record_filter("defect", args.line, args.station))


class _Session:
    """Connection bookkeeping shared with paho's thread. A refusal that retrying cannot fix
    (agent.protocols.mqtt.refusals) ends the command; paho retries the others."""

    def __init__(self, topic: str, where: str, err: TextIO) -> None:
        self.topic, self.where, self.err = topic, where, err
        self.subscribed = threading.Event()
        self.refused: str | None = None
        self.stop = threading.Event()

    def subscribe(self, client: mqtt.Client) -> None:
        client.subscribe(self.topic, qos=1)

    def on_reconnect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        refusal = connack_refusal(reason)
        if refusal is None:
            self.subscribe(client)
            self._note(f"reconnected to {self.where}")
        else:
            self.refusal(refusal)

    def on_reconnect_fail(self, client: mqtt.Client, _u: Any) -> None:
        assert isinstance(client, MqttClient)
        self.refusal(client.refusal())

    def refusal(self, refusal: Refusal) -> None:
        if refusal.for_good:
            self.refused = refusal.reason
            self.stop.set()
        else:
            self._note(f"{self.where}: {refusal.reason}; retrying")

    def on_subscribe(self, _c: Any, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        if any(r.is_failure for r in reasons):
            self.refused = f"subscription to {self.topic} refused: {reasons[0]}"
        self.subscribed.set()

    def on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not self.stop.is_set():
            self._note(f"connection to {self.where} lost ({reason}); reconnecting")

    def _note(self, text: str) -> None:
        print(f"edge-agent alerts: {text}", file=self.err, flush=True)


def main(args: argparse.Namespace) -> int:
    try:
        target = _from_config(args) if args.config else _from_options(args)
        if target is None:
            return 2
        where = f"broker {target.broker.host}:{target.broker.port}"
        client = build_mqtt_client(target.broker, where, target.base_dir,
                                   client_id=f"edge-alerts-{uuid.uuid4().hex[:8]}",
                                   protocol=target.protocol, reconnect_max_s=RECONNECT_MAX_S)
    except (ValueError, OSError) as exc:
        print(f"edge-agent alerts: {exc}", file=sys.stderr)
        return 2
    session = _Session(target.topic, where, sys.stderr)
    printer = AlertPrinter(args.json, sys.stdout, sys.stderr)
    client.on_subscribe = session.on_subscribe
    client.on_message = lambda _c, _u, msg: printer.message(msg.topic, bytes(msg.payload))
    return _run(client, session, args.json)


def _run(client: MqttClient, session: _Session, as_json: bool) -> int:
    def stop(signum: int, _frame: FrameType | None) -> None:
        session.stop.set()

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        refusal = connect_and_wait(client, 30, CONNECT_TIMEOUT_S, then=session.subscribe)
        if refusal is not None:
            client.loop_stop()
            print(f"edge-agent alerts: cannot connect to {session.where}: {refusal.reason}",
                  file=sys.stderr)
            return 1
        client.on_connect = session.on_reconnect
        client.on_connect_fail = session.on_reconnect_fail
        client.on_disconnect = session.on_disconnect
        try:
            return _watch(session, as_json)
        finally:
            session.stop.set()
            client.disconnect()
            client.loop_stop()
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _watch(session: _Session, as_json: bool) -> int:
    session.subscribed.wait(CONNECT_TIMEOUT_S)
    if not session.refused:
        if not as_json:
            print(header(), flush=True)
        print(f"edge-agent alerts: subscribed to {session.topic} on {session.where} "
              "(Ctrl-C to stop)", file=sys.stderr, flush=True)
        while not session.stop.wait(0.2):
            pass
    if session.refused:
        print(f"edge-agent alerts: {session.where} refused: {session.refused}", file=sys.stderr)
        return 1
    return 0
