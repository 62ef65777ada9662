"""Sparkplug B over MQTT: the node (births, deaths, seq), protobuf payloads, the sink."""
