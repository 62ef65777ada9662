"""Command line of the soft PLC: `python -m plc` and `edge-agent plc-sim`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from urllib.parse import urlparse

from asyncua import ua

from plc.conveyor import ConveyorSettings
from plc.opcua_server import ServerSecurity
from plc.softplc import SoftPlc
from plc.tags import TAGS_FILE, load_tags


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tags", type=Path, default=TAGS_FILE, help="tag map (default: plc/tags.yaml)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--modbus-port", type=int, default=None, help="Modbus TCP port (default from the tag map; 0 = off)")
    p.add_argument("--opcua-port", type=int, default=None, help="OPC UA port (default from the tag map; 0 = off)")
    p.add_argument("--triggered", action="store_true", help="drive the trigger handshake, one trigger per part")
    p.add_argument("--part-period", type=float, default=1.0, help="seconds between parts (default 1.0)")
    p.add_argument("--watchdog-ms", type=int, default=1500, help="heartbeat watchdog (default 1500 ms)")
    p.add_argument("--server-cert", type=Path, help="OPC UA server certificate: enables Basic256Sha256 SignAndEncrypt")
    p.add_argument("--server-key", type=Path, help="OPC UA server private key (PEM)")
    p.add_argument("--trust", type=Path, action="append", help="trusted client certificate (repeat); default: any")
    p.add_argument("--quiet", action="store_true", help="do not print state lines")


def build(args: argparse.Namespace) -> SoftPlc:
    tags = load_tags(args.tags)
    modbus = tags.modbus_port if args.modbus_port is None else args.modbus_port
    opcua = (urlparse(tags.endpoint).port or 4840) if args.opcua_port is None else args.opcua_port
    security = None
    if args.server_cert or args.server_key:
        if not (args.server_cert and args.server_key):
            raise SystemExit("plc-sim: --server-cert and --server-key go together")
        security = ServerSecurity(args.server_cert, args.server_key, policies=[
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ua.SecurityPolicyType.Basic256Sha256_Sign], trusted_clients=args.trust)
    settings = ConveyorSettings(part_period_s=args.part_period, watchdog_ms=args.watchdog_ms,
                                triggered=args.triggered)
    return SoftPlc(tags, modbus or None, opcua or None, host=args.host, settings=settings,
                   opcua_security=security, quiet=args.quiet)


async def serve(plc: SoftPlc) -> None:
    """Run until SIGINT/SIGTERM; a line `r` on stdin (or SIGUSR1) presses the operator reset."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    loop.add_signal_handler(signal.SIGUSR1, plc.press_reset)
    reading = _watch_stdin(loop, plc)
    await plc.start()
    if not plc.quiet:
        print("softplc: type r + Enter (or send SIGUSR1) to press the operator reset; Ctrl-C ends")
    try:
        await done.wait()
    finally:
        if reading:
            loop.remove_reader(sys.stdin.fileno())
        await plc.stop()


def _watch_stdin(loop: asyncio.AbstractEventLoop, plc: SoftPlc) -> bool:
    if not sys.stdin.isatty():
        return False

    def on_line() -> None:
        line = sys.stdin.readline().strip().lower()
        if line in ("r", "reset"):
            plc.press_reset()

    with contextlib.suppress(OSError, ValueError):
        loop.add_reader(sys.stdin.fileno(), on_line)
        return True
    return False


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("asyncua", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        asyncio.run(serve(build(args)))
    except OSError as exc:
        print(f"plc-sim: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
