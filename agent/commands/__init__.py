"""One module per `edge-agent` subcommand: add_arguments(parser) and main(args) -> exit code."""

from __future__ import annotations

import sys

from agent.configfile import ConfigError, LoadedConfig, load_config

EXIT_CONFIG = 2  # every command that reads a config exits 2 on an invalid one


def load_or_report(path: str) -> LoadedConfig | None:
    """The validated config, or None after printing every error (line and key) to stderr."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return None
