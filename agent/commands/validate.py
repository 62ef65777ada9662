"""Check a config file: exit 0 when valid, or exit 2 with every error (YAML line and key) on stderr."""

from __future__ import annotations

import argparse

from agent.commands import EXIT_CONFIG, load_or_report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file")


def main(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return EXIT_CONFIG
    cfg = loaded.config
    n = len(cfg.stations())
    print(f"{args.config}: OK ({len(cfg.cameras)} camera(s), {len(cfg.models)} model(s), "
          f"{len(cfg.plcs)} PLC(s), {len(cfg.sinks)} sink(s), {n} station(s))")
    return 0
