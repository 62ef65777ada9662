"""Look at the evidence a daemon stored, and export it for retraining (read-only, lock-free:
safe while the daemon runs).

  list   [filters] [--limit N]        stored items, newest last
  show   ID                           the sidecar of one item and its files
  export [filters] --format F --out DIR   imagefolder (a folder per class) or yolo
                                          (images, labels, data.yaml for Ultralytics)

Filters: --station LINE/STATION, --class CLASS, --verdict OK|NG|UNKNOWN,
--since / --until (ISO-8601 capture time, e.g. 2026-11-29T08:00:00+00:00).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.configfile import ConfigError, load_config
from agent.evidence import export as ex
from agent.evidence import layout
from agent.evidence.store import EvidenceStore


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("action", choices=("list", "show", "export"))
    p.add_argument("id", nargs="?", help="show: the evidence id")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", help="YAML config file (evidence is under its state_dir)")
    where.add_argument("--dir", type=Path, help="the evidence folder itself (state_dir/evidence)")
    p.add_argument("--station", help="LINE/STATION (or just STATION)")
    p.add_argument("--class", dest="cls", help="defect class (or ok, unknown)")
    p.add_argument("--verdict", choices=("OK", "NG", "UNKNOWN", "ok", "ng", "unknown"))
    p.add_argument("--since", type=_time, help="capture time from (ISO-8601)")
    p.add_argument("--until", type=_time, help="capture time before (ISO-8601)")
    p.add_argument("--limit", type=int, default=0, help="list: at most the newest N (0 = all)")
    p.add_argument("--json", action="store_true", help="list/show: JSON output")
    p.add_argument("--format", choices=("imagefolder", "yolo"), default="imagefolder")
    p.add_argument("--out", type=Path, help="export: output folder")
    p.add_argument("--val-fraction", type=float, default=0.2, help="yolo: share for val")
    p.add_argument("--whole-frame", action="store_true",
                   help="yolo: label findings without a box (classification) with the whole frame")


def _time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def main(args: argparse.Namespace) -> int:
    try:
        root = args.dir if args.dir is not None else _root(args.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    if not root.is_dir():
        print(f"edge-agent evidence: no evidence folder {root}", file=sys.stderr)
        return 1
    store = EvidenceStore(root)
    filters = ex.Filters(args.station, args.cls, args.verdict, args.since, args.until)
    if args.action == "show":
        return _show(store, args.id, args.json)
    if args.action == "list":
        return _list(store, filters, args.limit, args.json)
    if args.out is None:
        print("edge-agent evidence export: --out DIR is required", file=sys.stderr)
        return 2
    items = ex.select(store, filters)
    if args.format == "yolo":
        rep = ex.export_yolo(store, items, args.out, val_fraction=args.val_fraction,
                             whole_frame=args.whole_frame)
    else:
        rep = ex.export_imagefolder(store, items, args.out)
    print(json.dumps({"format": args.format, "out": str(args.out), "images": rep.images,
                      "labels": rep.labels, "classes": rep.classes,
                      "skipped_no_box": rep.skipped_no_box, "vanished": rep.vanished}))
    return 0


def _root(config: str) -> Path:
    loaded = load_config(config)
    return loaded.resolve(loaded.config.state_dir) / "evidence"


def _list(store: EvidenceStore, filters: ex.Filters, limit: int, as_json: bool) -> int:
    rows = list(ex.select(store, filters))
    if limit > 0:
        rows = rows[-limit:]
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'id':36}  {'captured (UTC)':26}  {'station':20}  {'verdict':7}  "
          f"{'class':10}  reasons")
    for m in rows:
        print(f"{m['evidence']['id']:36}  {str(m.get('capture_time'))[:26]:26}  "
              f"{_station(m):20}  {str(m.get('verdict') or '-'):7}  {ex.label_of(m):10}  "
              f"{','.join(m.get('reasons', []))}")
    print(f"{len(rows)} item(s) in {store.root}")
    return 0


def _show(store: EvidenceStore, eid: str | None, as_json: bool) -> int:
    if not eid:
        print("edge-agent evidence show: give an evidence id", file=sys.stderr)
        return 2
    try:
        meta = store.sidecar(eid)
    except layout.BadEvidenceId as exc:
        print(f"edge-agent evidence show: {exc}", file=sys.stderr)
        return 2
    if meta is None:
        print(f"edge-agent evidence show: no evidence {eid} in {store.root}", file=sys.stderr)
        return 1
    files = sorted(str(p) for p in store.files_of(eid))
    out: dict[str, Any] = {**meta, "files_on_disk": files, "waiting_for": store.waiting(eid)}
    print(json.dumps(out, indent=1 if as_json else 2, sort_keys=True))
    return 0


def _station(m: dict[str, Any]) -> str:
    return f"{m.get('line')}/{m.get('station')}"
