"""Subscribe to a broker and show defect alerts live: one table row per defect (station,
defect, score, time, latency), or the payloads as JSON lines with --json. Ctrl-C or
SIGTERM stops it cleanly (exit 0); a broker that cannot be reached or refuses the
connection is reported with the reason (exit 1)."""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import sys
import threading
import uuid
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import paho.mqtt.client as mqtt

from agent.protocols.mqtt.topics import alert_filter

COLUMNS = (("STATION", 22), ("DEFECT", 22), ("SCORE", 6), ("TIME (UTC)", 23), ("LATENCY", 10))
CONNECT_TIMEOUT_S = 10.0


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


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.tls_ca is None and not args.tls:
        return None
    ctx = ssl.create_default_context()
    if args.tls_ca is not None:
        ctx.load_verify_locations(cafile=str(args.tls_ca))
    return ctx


def _client(args: argparse.Namespace) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                         client_id=f"edge-alerts-{uuid.uuid4().hex[:8]}")
    if args.username:
        pw = args.password_file.read_text().rstrip("\r\n") if args.password_file else None
        client.username_pw_set(args.username, pw)
    ctx = _tls_context(args)
    if ctx is not None:
        client.tls_set_context(ctx)
    return client


class _Session:
    """Connection bookkeeping shared with paho's thread."""

    def __init__(self, topic: str, where: str, err: TextIO) -> None:
        self.topic, self.where, self.err = topic, where, err
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.refused: str | None = None
        self.stop = threading.Event()
        self.was_up = False

    def on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            self.connected.set()
            return
        client.subscribe(self.topic, qos=1)
        if self.was_up:
            print(f"edge-agent alerts: reconnected to {self.where}", file=self.err, flush=True)
        self.was_up = True
        self.connected.set()

    def on_subscribe(self, _c: Any, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        if any(r.is_failure for r in reasons):
            self.refused = f"subscription to {self.topic} refused: {reasons[0]}"
        self.subscribed.set()

    def on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self.was_up and not self.stop.is_set():
            print(f"edge-agent alerts: connection to {self.where} lost ({reason}); reconnecting",
                  file=self.err, flush=True)


def main(args: argparse.Namespace) -> int:
    port = args.port or (8883 if (args.tls or args.tls_ca) else 1883)
    where = f"broker {args.host}:{port}"
    try:
        topic = alert_filter(args.prefix, args.site, args.line, args.station)
        client = _client(args)
    except (ValueError, OSError, ssl.SSLError) as exc:
        print(f"edge-agent alerts: {exc}", file=sys.stderr)
        return 2
    session = _Session(topic, where, sys.stderr)
    printer = AlertPrinter(args.json, sys.stdout, sys.stderr)
    client.on_connect = session.on_connect
    client.on_disconnect = session.on_disconnect
    client.on_subscribe = session.on_subscribe
    client.on_message = lambda _c, _u, msg: printer.message(msg.topic, bytes(msg.payload))
    return _run(client, session, args.host, port, args.json)


def _run(client: mqtt.Client, session: _Session, host: str, port: int, as_json: bool) -> int:
    def stop(signum: int, _frame: FrameType | None) -> None:
        session.stop.set()

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            client.connect(host, port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            print(f"edge-agent alerts: cannot connect to {session.where}: {exc}", file=sys.stderr)
            return 1
        client.loop_start()
        try:
            return _watch(client, session, as_json)
        finally:
            session.stop.set()
            client.disconnect()
            client.loop_stop()
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _watch(client: mqtt.Client, session: _Session, as_json: bool) -> int:
    if not session.connected.wait(CONNECT_TIMEOUT_S) and not session.stop.is_set():
        print(f"edge-agent alerts: no answer from {session.where} within "
              f"{CONNECT_TIMEOUT_S:g} s", file=sys.stderr)
        return 1
    if not session.refused:
        session.subscribed.wait(CONNECT_TIMEOUT_S)
    if session.refused:
        print(f"edge-agent alerts: {session.where} refused: {session.refused}", file=sys.stderr)
        return 1
    if not as_json:
        print(header(), flush=True)
    print(f"edge-agent alerts: subscribed to {session.topic} on {session.where} "
          "(Ctrl-C to stop)", file=sys.stderr, flush=True)
    while not session.stop.wait(0.2):
        pass
    return 0
