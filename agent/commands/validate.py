"""Check a config file: exit 0 when valid, or exit 2 with every error (YAML line and key) on stderr."""

from __future__ import annotations

import argparse
import sys

from agent.config import ConfigError, load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file")


def main(args: argparse.Namespace) -> int:
    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    cfg = loaded.config
    n = len(cfg.stations())
    print(f"{args.config}: OK ({len(cfg.cameras)} camera(s), {len(cfg.models)} model(s), "
          f"{len(cfg.plcs)} PLC(s), {len(cfg.sinks)} sink(s), {n} station(s))")
    return 0
