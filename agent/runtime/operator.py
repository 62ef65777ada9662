"""What an accepted operator command does on the running daemon (on the event loop).

The command arrived authenticated, replay-checked and audited (agent.protocols.mqtt.listener,
or the console's operator path, agent.web.operator);
here it acts: reset a latched stop, pause / resume inspection, promote the candidate
model or roll back to the previous one (agent.runtime.model_lifecycle), publish the
birth again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.protocols.base import StatusPublisher

if TYPE_CHECKING:
    from agent.runtime.daemon import Daemon


def handle_operator_command(agent: Daemon, cmd: Any, via: str = "mqtt") -> None:
    """`via`: the path it came by (mqtt, console), for the audit's `source`."""
    action = getattr(cmd, "action", None)
    line, station = getattr(cmd, "line", None), getattr(cmd, "station", None)
    source = f"{via}:{getattr(cmd, 'client_id', '?')}"
    targets = [rt for rt in agent.stations.values()
               if (line in (None, rt.line)) and (station in (None, rt.name))]
    for rt in targets:
        if action == "reset":
            agent.pipeline.reset_station(rt.line, rt.name, source)
        elif action == "pause":
            rt.pause()
        elif action == "resume":
            rt.resume()
        elif action in ("promote", "rollback"):
            agent.lifecycle.command(rt, action, getattr(cmd, "model", None), source)
    if action == "rebirth":
        for sink in agent.sinks.values():
            if isinstance(sink, StatusPublisher):
                sink.set_birth(agent.birth())
