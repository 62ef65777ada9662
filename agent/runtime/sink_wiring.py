"""The MES side of the daemon: one sink and one outbox forwarder per configured sink.

Built (and their stats registered) with the app; `start()` connects each sink, then
starts its forwarder; `stop()` stops the forwarders (the in-flight send finishes, the
rest stays in the outbox), then closes the sinks: only those that were started.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from agent.health.registry import StatsRegistry
from agent.outbox.forwarder import Forwarder
from agent.outbox.store import Outbox
from agent.protocols.base import CommandSource, Sink, SinkContext, StatusPublisher
from agent.runtime import stats_sources
from agent.runtime.build import build_sink
from agent.tasks import stop_within


class SinkWiring:
    def __init__(self, configs: Mapping[str, Any], ctx: SinkContext, outbox: Outbox,
                 stats: StatsRegistry, birth: Callable[[], dict[str, Any]],
                 on_command: Callable[..., None], audit: Callable[..., None]) -> None:
        """`birth`: the agent's birth message (sinks that publish one); `on_command`: the
        operator command handler of sinks that listen for them (each attempt audited by
        the sink through `audit`, with its id)."""
        self.sinks: dict[str, Sink] = {}
        self.forwarders: dict[str, Forwarder] = {}
        for name, sc in configs.items():
            sink = build_sink(name, sc, ctx)
            if isinstance(sink, StatusPublisher):
                sink.set_birth(birth())
            if isinstance(sink, CommandSource):
                sink.on_command(on_command, audit)
            fwd = Forwarder(outbox, sink, sc.outbox)
            self.sinks[name], self.forwarders[name] = sink, fwd
            stats_sources.sink(stats, name, sc.type, sink, fwd)
        self._started: list[str] = []  # sinks started (their forwarders stop on their own)

    async def start(self) -> None:
        for name, sink in self.sinks.items():
            await sink.start()
            self._started.append(name)
            await self.forwarders[name].start()

    async def stop(self) -> None:
        for fwd in self.forwarders.values():  # a forwarder never started returns at once
            await stop_within(fwd.stop(), 2.0, "forwarder")
        for name in self._started:
            sink = self.sinks[name]
            await stop_within(sink.close(), 2.0, f"sink {sink.name}")
        self._started.clear()
