"""Sparkplug B sink factory (the registry's `sparkplug` sink)."""

from __future__ import annotations

from pathlib import Path

from agent.protocols.base import SinkContext
from agent.protocols.sparkplug.client import BdSeq, NodeDeath, SpbTopics, build_spb_client
from agent.protocols.sparkplug.config import SparkplugSinkConfig
from agent.protocols.sparkplug.sink import SparkplugSink


def build(name: str, cfg: SparkplugSinkConfig, ctx: SinkContext) -> SparkplugSink:
    where = f"sparkplug sink {name!r} (broker {cfg.host}:{cfg.port})"
    topics = SpbTopics(cfg.group_id, cfg.edge_node_id or ctx.agent_id, cfg.primary_host_id)
    death = NodeDeath(topics, BdSeq(Path(ctx.state_dir) / f"sparkplug-{name}.json"))
    client = build_spb_client(cfg, ctx, where, death)
    return SparkplugSink(name, cfg, client, death)
