"""Run the embedded demo: synthetic conveyor camera, bundled model, soft PLC in this
process, MQTT to localhost:1883 if a broker is there (otherwise the outbox visibly
holds the records), a file-drop sink, and a live terminal view. Ctrl-C ends it with a summary.

The demo config ships in the package (agent/data/config/demo.yaml, the checkout's
config/demo.yaml); its outbox, log and file drop go under ./var/demo of the current
directory (--state-dir), so an installed release never writes into its own venv.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import secrets
import socket
import sys
from pathlib import Path

from agent.app import Agent, RunLimits
from agent.commands import EXIT_CONFIG, load_or_report
from agent.configfile import LoadedConfig
from agent.data import demo_config
from agent.logsetup import setup_logging
from agent.protocols.file.config import FileSinkConfig
from agent.runner import run_agent

DEMO_STATE = Path("var/demo")  # relative to the current directory


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None,
                   help="demo config (default: the bundled one, config/demo.yaml)")
    p.add_argument("--state-dir", type=Path, default=None,
                   help=f"outbox, log and file drop go here (default with the bundled config: "
                        f"./{DEMO_STATE}; with --config: the config's state_dir)")
    p.add_argument("--duration", type=float, default=None, help="end after S seconds")
    p.add_argument("--auto-reset", type=float, default=4.0,
                   help="the simulated operator presses reset S seconds after a stop (0 = never)")
    p.add_argument("--no-view", action="store_true", help="plain logs instead of the live view")


def broker_up(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def with_state_dir(loaded: LoadedConfig, state: Path) -> LoadedConfig:
    """The config with its state_dir at `state`; file drops inside the old one move along."""
    old = loaded.resolve(loaded.config.state_dir)
    state = state.resolve()
    sinks = {}
    for name, sink in loaded.config.sinks.items():
        if isinstance(sink, FileSinkConfig) and loaded.resolve(sink.dir).is_relative_to(old):
            new_dir = state / loaded.resolve(sink.dir).relative_to(old)
            sink = sink.model_copy(update={"dir": str(new_dir)})
        sinks[name] = sink
    config = loaded.config.model_copy(update={"state_dir": str(state), "sinks": sinks})
    return dataclasses.replace(loaded, config=config)


def with_console_token(loaded: LoadedConfig) -> tuple[LoadedConfig, str]:
    """A random health token for this run when the config has none (the web console needs
    one to log in); returns the config and the line telling the URL and the token."""
    cfg = loaded.config
    listen = cfg.console.listen or cfg.health.listen
    if not cfg.console.enabled or not listen:
        return loaded, ""
    token = cfg.health.token
    if token is None:
        token = secrets.token_urlsafe(12)
        health = cfg.health.model_copy(update={"token": token})
        loaded = dataclasses.replace(loaded, config=cfg.model_copy(update={"health": health}))
    host, _, port = listen.rpartition(":")
    if host.strip("[]") in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return loaded, f"Web console: http://{host}:{port}/console/  (token: {token})"


def main(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config or str(demo_config()))
    if loaded is None:
        return EXIT_CONFIG
    state_dir = args.state_dir or (None if args.config else DEMO_STATE)
    if state_dir is not None:
        loaded = with_state_dir(loaded, state_dir)
    loaded, args.console = with_console_token(loaded)
    if args.console:
        print(args.console, flush=True)
    if args.no_view:
        setup_logging("info", "text")
    else:  # the live view owns the terminal: logs go to a file next to the outbox
        state = loaded.resolve(loaded.config.state_dir)
        state.mkdir(parents=True, exist_ok=True)
        args.log_file = str(state / "demo.log")
        setup_logging("info", "text", file=args.log_file)
    return asyncio.run(_demo(loaded, args))


async def _demo(loaded, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    from plc.softplc import SoftPlc
    from plc.tags import load_tags

    tags = load_tags()
    plc = SoftPlc(tags, modbus_port=tags.modbus_port, opcua_port=None, quiet=True)
    try:
        await plc.start()
    except (OSError, RuntimeError) as exc:
        print(f"edge-agent demo: cannot start the soft PLC on 127.0.0.1:{tags.modbus_port} "
              f"({exc}); is another demo or plc-sim running?", file=sys.stderr)
        return 3
    mqtt = [s for s in loaded.config.sinks.values() if s.type == "mqtt"]
    note = ""
    if mqtt and not broker_up(mqtt[0].host, mqtt[0].port):
        note = (f"No MQTT broker on {mqtt[0].host}:{mqtt[0].port}: records wait in the durable "
                "outbox (see 'queued') and drain when one starts. ")
    if loaded.config.evidence.enabled:
        note += (f"Evidence images: {loaded.resolve(loaded.config.state_dir) / 'evidence'}. ")
    if getattr(args, "log_file", None):
        note += f"Logs: {args.log_file}. "
    if getattr(args, "console", ""):
        note += args.console + ". "
    note += "Ctrl-C ends the demo with a summary."
    state: dict[str, Agent] = {}

    async def during(agent: Agent) -> None:
        state["agent"] = agent
        await _live(agent, plc, args, note)

    try:
        rc = await run_agent(loaded, RunLimits(duration_s=args.duration), during)
    finally:
        await plc.stop()
    if "agent" in state:
        from agent.demo_view import summary

        print(summary(state["agent"]))
    return rc


async def _live(agent: Agent, plc, args: argparse.Namespace, note: str) -> None:  # type: ignore[no-untyped-def]
    from rich.live import Live

    from agent.demo_view import render

    stopped_since: float | None = None
    loop = asyncio.get_running_loop()
    live = None if args.no_view else Live(render(agent, plc.conveyor.describe(), note),
                                         refresh_per_second=4, transient=False)
    if live is not None:
        live.start()
    try:
        while True:
            await asyncio.sleep(0.25)
            now = loop.time()
            if not plc.conveyor.running and args.auto_reset > 0:
                stopped_since = stopped_since or now
                if now - stopped_since >= args.auto_reset:
                    plc.press_reset()
                    stopped_since = None
            else:
                stopped_since = None
            if live is not None:
                live.update(render(agent, plc.conveyor.describe(), note))
    finally:
        if live is not None:
            live.stop()
