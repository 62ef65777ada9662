"""`edge-agent`: one console script, one module per subcommand under agent/commands/."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agent import __version__

# subcommand -> (module under agent.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run the daemon on a config file"),
    "demo": ("demo", "run the embedded demo (synthetic camera, bundled model, soft PLC)"),
    "validate": ("validate", "check a config file; exit 0, or 2 with every error on stderr"),
    "schema": ("schema", "print the JSON Schema of the config"),
    "probe": ("probe", "commissioning check of every PLC signal and sink, without actuating"),
    "cameras": ("cameras", "list the GenICam (GigE Vision / USB3 Vision) cameras found, with a config snippet"),
    "bench": ("bench", "benchmark a model: p50/p99 of each stage per available provider"),
    "alerts": ("alerts", "subscribe to a broker and show defect alerts live"),
    "outbox": ("outbox", "inspect the durable outbox: stats | list | dead | retry"),
    "evidence": ("evidence", "stored evidence images: list | show | export (imagefolder, yolo)"),
    "reset": ("reset", "reset a latched stop on a running daemon (authenticated MQTT command)"),
    "model": ("model", "promote a station's candidate model, or roll it back, on a running daemon"),
    "evaluate": ("evaluate", "run a candidate model over a folder of images offline (throttled)"),
    "plc-sim": ("plc_sim", "run the soft PLC (Modbus TCP + OPC UA conveyor simulator)"),
}
BATCH_JOBS = frozenset({"evaluate"})  # run at the lowest CPU priority (agent.lowprio)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that subcommand's module is imported (and its options added).

    Subcommand modules pull in onnxruntime, OpenCV, asyncua: `--version` and `--help` need none.
    """
    parser = argparse.ArgumentParser(prog="edge-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if only is None or name == only:
            mod = importlib.import_module(f"agent.commands.{module}")
            p.description = mod.__doc__
            mod.add_arguments(p)
            p.set_defaults(_module=mod)
    return parser


def chosen_command(argv: Sequence[str]) -> str:
    """The subcommand named on the command line ("" when none is): the first non-option word."""
    return next((a for a in argv if not a.startswith("-")), "")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if chosen_command(argv) in BATCH_JOBS:  # before anything heavy is imported
        from agent.lowprio import lowest_priority

        lowest_priority()
    args = build_parser(chosen_command(argv)).parse_args(argv)
    try:
        return int(args._module.main(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
