"""Promote the candidate model of a station, or roll it back, on a running daemon.

    edge-agent model promote --config line.yaml --station infeed [--line L] [--model NAME]
    edge-agent model rollback --config line.yaml --station infeed

Sent over the daemon's authenticated operator command path (the `commands` of an MQTT
sink in the same config), like `edge-agent reset`: signed, replay-protected, audited.
`promote` loads the station's `shadow` model (or `--model`, a key under `models`)
beside the running one, checks and warms it up, then switches between two frames; the
guards of `model_guard` watch it and roll back by themselves. `rollback` returns to the
previous model at once. The answer says the command was accepted; the switch itself (or
why it was refused) is in the audit log (`model_switch`), the `model` record and
/status (`model_lifecycle`). Exit 0 accepted, 1 rejected or no answer, 2 bad config.
"""

from __future__ import annotations

import argparse

from agent.commands.reset import send_command


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
    return send_command(args.config, args.action, args.line, args.station, args.client_id,
                        args.timeout, extra)
