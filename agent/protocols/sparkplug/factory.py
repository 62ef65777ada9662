"""Sparkplug B sink factory (the registry's `sparkplug` sink)."""

from __future__ import annotations

from agent.protocols.base import SinkContext
from agent.protocols.sparkplug.client import build_spb_client
from agent.protocols.sparkplug.config import SparkplugSinkConfig
from agent.protocols.sparkplug.sink import SparkplugSink


def build(name: str, cfg: SparkplugSinkConfig, ctx: SinkContext) -> SparkplugSink:
    where = f"sparkplug sink {name!r} (broker {cfg.host}:{cfg.port})"
    client = build_spb_client(cfg, ctx, where)
    return SparkplugSink(name, cfg, ctx, client, where)
