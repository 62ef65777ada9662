"""MQTT PLC target plugin: commands to a PLC that subscribes to MQTT (S7-1500 with an MQTT
client library, CODESYS MQTT). Config model and factory.

Addresses are topics. Every write is a retained QoS 1 MQTT 5 message whose expiry is the
command's remaining time (whole seconds, at least 1): a PLC that is offline past the
deadline never receives the stop. "Acknowledged" means the broker's PUBACK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from agent.config.plugin import Plugin
from agent.protocols.mqtt.broker import BrokerConnection
from agent.protocols.plc_common import PlcCommon

if TYPE_CHECKING:
    pass


class MqttPlcConfig(PlcCommon, BrokerConnection):
    type: Literal["mqtt"] = Field(description="PLC that subscribes to MQTT (MQTT 5 broker; addresses are topics).")
    client_id: str | None = Field(None, description="Client id; default: '<agent_id>-plc-<name>'.")
    keepalive_s: int = Field(10, ge=2, le=3600, description="MQTT keep-alive; a dead broker is noticed within 1.5x this.")
    connect_timeout_ms: int = Field(3000, ge=100, description="Give up one connect attempt after this long.")
    poll_ms: int = Field(20, ge=5, le=10000, description="Poll period of trigger and reset inputs (last retained value of their topics).")


PLC = Plugin("mqtt", MqttPlcConfig, "agent.protocols.mqtt.factory:build_plc")
