"""The plugin catalog: one registry per kind. Adding a camera, sink or PLC type is one
`Plugin` next to its config model and one line here; the config union, the JSON schema,
the config reference and the factories all follow from these lists."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.capture.genicam import config as genicam
from agent.capture.sources import folder_source, opencv_source, synthetic_source
from agent.config.plugin import Registry
from agent.protocols.file import config as file
from agent.protocols.http import config as http
from agent.protocols.modbus import config as modbus
from agent.protocols.mqtt import config as mqtt
from agent.protocols.mqtt import plc_config as mqtt_plc
from agent.protocols.opcua import config as opcua
from agent.protocols.sparkplug import config as sparkplug

if TYPE_CHECKING:
    from agent.capture.base import FrameSource
    from agent.protocols.base import Sink
    from agent.protocols.link import PlcLink

CAMERAS: Registry[FrameSource] = Registry("camera", [
    opencv_source.PLUGIN, folder_source.PLUGIN, synthetic_source.PLUGIN, genicam.PLUGIN])
SINKS: Registry[Sink] = Registry("sink", [mqtt.SINK, http.SINK, file.SINK, sparkplug.SINK])
PLCS: Registry[PlcLink] = Registry("plc", [modbus.PLC, opcua.PLC, mqtt_plc.PLC])
