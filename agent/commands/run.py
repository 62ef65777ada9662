"""Run the daemon on a config file until SIGTERM/SIGINT; SIGHUP reloads the config.

Exit codes: 0 clean stop, 2 invalid config, 3 fatal start-up error (model,
provider, state directory), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import signal
import sys

from agent.app import RunLimits
from agent.commands import EXIT_CONFIG, load_or_report
from agent.logsetup import setup_logging
from agent.runner import EXIT_STARTUP, run_agent
from agent.runtime.state_dir import state_dir_problem


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", required=True, help="YAML config file")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N inspections")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--log-format", choices=("text", "json"), default=None,
                   help="override log.format of the config")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=None)


def main(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return EXIT_CONFIG
    cfg = loaded.config
    problem = state_dir_problem(loaded.resolve(cfg.state_dir))
    if problem is not None:
        print(f"edge-agent: cannot start: {problem}", file=sys.stderr)
        return EXIT_STARTUP
    setup_logging(args.log_level or cfg.log.level, args.log_format or cfg.log.format)
    # `kill -USR2 <pid>` writes every thread's stack to stderr (journal): for a hung daemon
    faulthandler.register(signal.SIGUSR2, all_threads=True)
    limits = RunLimits(max_frames=args.max_frames, duration_s=args.duration)
    return asyncio.run(run_agent(loaded, limits))
