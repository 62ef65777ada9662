"""Skeleton: filled by its issue."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    print("edge-agent: this subcommand is not built yet", file=sys.stderr)
    return 2
