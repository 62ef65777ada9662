"""Run an Agent until SIGTERM/SIGINT (or a run limit), with SIGHUP reload."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from agent.app import Agent, RunLimits, StartupError
from agent.configfile import LoadedConfig
from agent.runtime.reload import Reloader

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_STARTUP = 3  # (2, an invalid config, is agent.commands.EXIT_CONFIG)

Hook = Callable[[Agent], Awaitable[None]]


async def run_agent(loaded: LoadedConfig, limits: RunLimits, during: Hook | None = None) -> int:
    """Build, start, wait for a signal or a limit, shut down in order. Returns the exit code."""
    agent: Agent | None = None
    loop = asyncio.get_running_loop()
    try:
        agent = Agent(loaded, limits)  # a build that fails has released what it opened
        await agent.start()
    except StartupError as exc:
        print(f"edge-agent: cannot start: {exc}", file=sys.stderr)
        if agent is not None:
            await _abort(agent)
        return EXIT_STARTUP
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.request_stop, signal.Signals(sig).name)
    reloader = Reloader(agent)
    loop.add_signal_handler(signal.SIGHUP, reloader.request)
    extra = asyncio.ensure_future(during(agent)) if during is not None else None
    try:
        await agent.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        if extra is not None:
            extra.cancel()
            await asyncio.gather(extra, return_exceptions=True)
        await reloader.close()
        await agent.shutdown()
    return EXIT_OK


async def _abort(agent: Agent) -> None:
    """Release what a failed start already opened."""
    try:
        await agent.shutdown()
    except Exception:  # partially built: best effort, already reported
        log.debug("partial shutdown after failed start", exc_info=True)
