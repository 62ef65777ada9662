"""Start the console on the health server, or on its own listener (`console.listen`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from agent.health.server import HealthServer
from agent.web.console import Console

if TYPE_CHECKING:
    from agent.runtime.health_wiring import HealthWiring
    from agent.web.daemon import Daemon

log = logging.getLogger(__name__)


class ConsoleWiring:
    def __init__(self, agent: Daemon, health: HealthWiring) -> None:
        """`agent`: what the console shows and acts on (agent.web.state, operator path);
        `health`: the checks, status and listener it shares."""
        self.agent = agent
        self.health = health
        self.console: Console | None = None
        self.own: HealthServer | None = None  # the console's own listener, if configured

    async def start(self) -> None:
        a = self.agent
        cfg = a.cfg.console
        server = self.health.server
        if not cfg.enabled:
            return
        if cfg.listen:
            self.own = HealthServer(cfg.listen, self.health.all, a.metrics,
                                    self.health.status_json, a.cfg.health.token)
            await self.own.start()
            server = self.own
        if server is None:
            log.warning("console enabled but no listener: set health.listen or console.listen")
            return
        self.console = Console(a, cfg, a.cfg.health.token)
        self.console.attach(server)
        self.console.start()
        a.metrics.stats.register("console", self.console.live.stats)
        log.info("web console on http://%s/console/", _url_host(server))

    async def stop(self) -> None:
        if self.console is not None:
            self.console.stop()
        if self.own is not None:
            await self.own.stop()

    def url(self) -> str | None:
        server = self.own or self.health.server
        if self.console is None or server is None:
            return None
        return f"http://{_url_host(server)}/console/"


def _url_host(server: HealthServer) -> str:
    host = server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"[{host}]:{server.port}" if ":" in host else f"{host}:{server.port}"
