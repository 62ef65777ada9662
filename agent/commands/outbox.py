"""Inspect the durable outbox of a config's state_dir, also while the daemon runs.

  stats                     depth, in flight, dead, bytes, oldest age and counters per sink
  list [--sink S] [--limit N]  waiting records in delivery order
  dead [--sink S] [--limit N]  dead-lettered records with the reason
  retry [--sink S] [--id ID]   send dead records again (the daemon picks them up within 1 s)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agent.configfile import ConfigError, load_config
from agent.outbox import FILE_NAME
from agent.outbox import inspection as ob

STAT_COLUMNS = ("depth", "in_flight", "dead", "bytes", "oldest_age_s", "sent", "retried",
                "evicted", "refused", "dead_lettered")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--config", required=True, help="YAML config file (its state_dir holds the outbox)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("action", choices=("stats", "list", "dead", "retry"))
    p.add_argument("--sink", help="only this sink")
    p.add_argument("--limit", type=int, default=50, help="most rows listed (default 50)")
    p.add_argument("--id", dest="record_id", help="retry: only the record with this id")


def main(args: argparse.Namespace) -> int:
    try:
        path = outbox_path(args.config)
        conn = ob.connect(path, write=args.action == "retry")
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except ob.NotAnOutbox as exc:
        print(f"edge-agent outbox: {exc}", file=sys.stderr)
        return 1
    try:
        return _run(args, conn, path)
    finally:
        conn.close()


def outbox_path(config: str) -> Path:
    loaded = load_config(config)
    return loaded.resolve(loaded.config.state_dir) / FILE_NAME


def _run(args: argparse.Namespace, conn: Any, path: Path) -> int:
    if args.action == "stats":
        stats = ob.sink_stats(conn)
        if args.sink:
            stats = {k: v for k, v in stats.items() if k == args.sink}
        _print_stats(stats, path, args.json)
    elif args.action in ("list", "dead"):
        found = ob.rows(conn, args.action == "dead", args.sink, args.limit)
        _print_rows(found, args.action == "dead", args.json)
    else:
        n = ob.retry(conn, args.sink, args.record_id)
        print(json.dumps({"retried": n}) if args.json else
              f"{n} dead record(s) are ready again; a running daemon sends them within ~1 s")
    return 0


def _print_stats(stats: dict[str, dict[str, Any]], path: Path, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"path": str(path), "sinks": stats}, indent=2))
        return
    print(f"outbox {path}")
    if not stats:
        print("  (empty)")
        return
    width = max(len(s) for s in stats) + 2
    print("sink".ljust(width) + "".join(c.rjust(14) for c in STAT_COLUMNS))
    for sink, s in stats.items():
        print(sink.ljust(width) + "".join(str(s[c]).rjust(14) for c in STAT_COLUMNS))


def _print_rows(found: list[ob.Row], dead: bool, as_json: bool) -> None:
    if as_json:
        print(json.dumps([r.as_dict() for r in found], indent=2))
        return
    if not found:
        print("(no dead records)" if dead else "(no waiting records)")
        return
    for r in found:
        where = f"{r.line}/{r.station}" if r.line else "-"
        tail = f"  reason: {r.reason}" if dead else ""
        print(f"{r.seq:>8}  {r.id}  {r.sink:<10} {r.kind:<10} {where:<16} {r.created}  "
              f"attempts={r.attempts} {r.status} {r.size}B{tail}")
