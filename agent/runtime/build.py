"""Factories: config sections -> objects. Plugins are found by their `type` key."""

from __future__ import annotations

import importlib
from typing import Any

from agent.control.plc_link import PlcLink
from agent.sinks.base import Sink, SinkContext


def build_sink(name: str, cfg: Any, ctx: SinkContext) -> Sink:
    module = importlib.import_module(f"agent.sinks.{cfg.type}")
    sink: Sink = module.build(name, cfg, ctx)
    return sink


# PLC plugin module per `type` (an MQTT PLC target is not the MES-side MQTT sink)
PLC_MODULES = {"modbus": "modbus", "opcua": "opcua", "mqtt": "mqtt_plc"}


def build_plc(name: str, cfg: Any, ctx: SinkContext) -> PlcLink:
    module = importlib.import_module(f"agent.sinks.{PLC_MODULES[cfg.type]}")
    link: PlcLink = module.build(name, cfg, ctx)
    return link
