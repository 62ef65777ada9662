"""Commissioning check of a Sparkplug B sink: the broker accepts the node's connection
(same builder, credentials and TLS as the sink). Nothing is published: a Sparkplug host
application would take any message in the spBv1.0 namespace as node data."""

from __future__ import annotations

from agent.protocols.mqtt.client import build_mqtt_client, connect_and_wait
from agent.protocols.probe import ProbeRow, SinkProbe
from agent.protocols.sparkplug.config import SparkplugSinkConfig


def probe_sink(name: str, cfg: SparkplugSinkConfig, ctx: SinkProbe) -> list[ProbeRow]:
    """The registry's probe of a Sparkplug sink: connect, report, disconnect."""
    where = f"sparkplug {cfg.host}:{cfg.port}"
    client_id = f"{cfg.client_id or ctx.agent_id + '-spb'}-probe"
    try:
        client = build_mqtt_client(cfg, where, ctx.base_dir, client_id=client_id,
                                   protocol=cfg.protocol, reconnect_max_s=ctx.timeout)
    except ValueError as exc:  # unusable TLS files
        return [ProbeRow(name, "connect", where, False, str(exc))]
    refusal = connect_and_wait(client, max(5, int(ctx.timeout) + 5), ctx.timeout)
    try:
        if refusal is not None:
            return [ProbeRow(name, "connect", where, False, refusal.reason)]
        client.disconnect()
        return [ProbeRow(name, "connect", where, True,
                         "connected (nothing published: a Sparkplug host would read it as data)")]
    finally:
        client.loop_stop()
