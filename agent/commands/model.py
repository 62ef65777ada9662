"""Promote the candidate model of a station, or roll it back, on a running daemon.

    edge-agent model promote --config line.yaml --station infeed [--line L] [--model NAME]
    edge-agent model rollback --config line.yaml --station infeed

Sent over the daemon's authenticated operator command path (the `commands` of an MQTT
sink in the same config), like `edge-agent reset`: signed, replay-protected, audited.
`promote` loads the station's `shadow` model (or `--model`, a key under `models`)
beside the running one, checks and warms it up, then switches between two frames; the
guards of `model_guard` watch it and roll back by themselves. `rollback` returns to the
previous model at once. After the daemon's signed answer (the command was accepted),
this waits for the switch or its refusal in the daemon's /status (`model_lifecycle`;
also in the audit log, `model_switch`, and the `model` record) and prints it. Exit 0
switched, 1 rejected, refused or no answer, 2 bad config.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from typing import Any

from agent.commands import load_or_report
from agent.commands.reset import send_command

LOAD_WAIT_S = 60.0  # a promote loads, checks and warms the model up first


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("promote", "rollback"))
    p.add_argument("--config", "-c", required=True, help="the daemon's YAML config file")
    p.add_argument("--station", required=True)
    p.add_argument("--line", default=None, help="needed when several lines have the station")
    p.add_argument("--model", default=None,
                   help="promote: the model (key under `models`); default: the station's shadow")
    p.add_argument("--client-id", default="edge-agent-cli", help="operator client id")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")


def main(args: argparse.Namespace) -> int:
    extra = {"model": args.model} if args.action == "promote" and args.model else None
    sent = time.time()
    rc = send_command(args.config, args.action, args.line, args.station, args.client_id,
                      args.timeout, extra)
    if rc != 0:
        return rc
    return _follow(args, sent)


def _follow(args: argparse.Namespace, sent: float) -> int:
    """Wait for the switch (or its refusal) in the daemon's /status; 0 switched, 1 refused.
    Without a health server the answer is all there is (0)."""
    loaded = load_or_report(args.config)
    listen = loaded.config.health.listen if loaded is not None else ""
    if loaded is None or not listen:
        print("the outcome: audit log (model_switch) and the model record")
        return 0
    key = next((f"{ln}/{sn}" for ln, sn, _ in loaded.config.stations()
                if sn == args.station and args.line in (None, ln)), "")
    deadline = time.monotonic() + max(args.timeout, LOAD_WAIT_S)
    while time.monotonic() < deadline:
        last = _last(listen, loaded.config.health.token, key)
        if last is not None and last.get("time", 0) >= sent:
            if last.get("ok"):
                print(f"{key}: {last['event']}: now {last['model']} (sha256 "
                      f"{last['new_sha256'][:12]}, was {last['old_sha256'][:12]})")
                return 0
            print(f"{key}: NOT {str(last['event']).replace('_', ' ')}: {last.get('error')}",
                  file=sys.stderr)
            return 1
        time.sleep(0.2)
    print(f"{key}: no switch seen in /status within {max(args.timeout, LOAD_WAIT_S):g} s "
          "(still loading?): see the audit log (model_switch)", file=sys.stderr)
    return 1


def _last(listen: str, token: str | None, key: str) -> dict[str, Any] | None:
    host, port = listen.rsplit(":", 1)
    host = "127.0.0.1" if host in ("", "0.0.0.0") else host.strip("[]")
    req = urllib.request.Request(f"http://{host}:{port}/status")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            doc = json.load(resp)
    except (OSError, ValueError):
        return None
    for st in doc.get("model_lifecycle") or []:
        if st.get("station") == key:
            return st.get("last") or None
    return None
