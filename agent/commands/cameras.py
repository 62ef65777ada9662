"""List the GenICam cameras (GigE Vision, USB3 Vision) Aravis finds, like `arv-tool`,
with the config snippet to paste under `cameras:`. Exit 0 when at least one is found,
1 when none is, 2 when Aravis is not installed."""

from __future__ import annotations

import argparse
import sys

from agent.capture.genicam.aravis import AravisMissing


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-snippet", action="store_true", help="only the table, no config snippet")


def main(args: argparse.Namespace) -> int:
    from agent.capture.genicam.probe import discover, snippet

    try:
        devices = discover()
    except AravisMissing as exc:
        print(f"cameras: {exc}", file=sys.stderr)
        return 2
    if not devices:
        print("no GenICam camera found (GigE: same subnet, firewall open for UDP 3956 and the "
              "stream port; USB3: udev rules / permissions)")
        return 1
    head = ("DEVICE ID", "VENDOR", "MODEL", "SERIAL", "ADDRESS", "PROTOCOL")
    keys = ("device_id", "vendor", "model", "serial", "address", "protocol")
    rows = [head, *[tuple(d[k] for k in keys) for d in devices]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    if not args.no_snippet:
        print("\ncameras:")
        for d in devices:
            print(snippet(d), end="")
    return 0
