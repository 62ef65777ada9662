"""Run the soft PLC: the tag map (plc/tags.yaml) over Modbus TCP and OPC UA at once,
a conveyor with a stop latch, a heartbeat watchdog and (with --triggered) the
trigger handshake. Commission against it before the real PLC is there."""

from __future__ import annotations

import argparse

from plc import cli


def add_arguments(p: argparse.ArgumentParser) -> None:
    cli.add_arguments(p)


def main(args: argparse.Namespace) -> int:
    return cli.main(args)
