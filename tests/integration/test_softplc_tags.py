"""plc/tags.yaml is the single source: config/demo.yaml and the soft PLC agree with it."""

from __future__ import annotations

import yaml

from agent.protocols.modbus.address import parse_modbus_address
from plc.tags import load_tags
from tests.conftest import REPO


def test_demo_config_uses_the_tag_map() -> None:
    tags = load_tags()
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    plc = demo["plcs"]["softplc"]
    assert plc["port"] == tags.modbus_port and plc["device_id"] == tags.modbus_device_id
    assert plc["heartbeat"]["counter"] == tags.agent("heartbeat").modbus
    assert plc["heartbeat"]["status"] == tags.agent("status").modbus
    assert plc["reset"] == tags.agent("reset").modbus
    mapped = tags.signals("line1.station1", "modbus")
    for signal, address in demo["lines"]["line1"]["stations"]["station1"]["signals"].items():
        assert mapped[signal] == address, signal


def test_tag_map_addresses_do_not_overlap_and_node_ids_are_unique() -> None:
    tags = load_tags().tags.values()
    cells = [c for t in tags for c in parse_modbus_address(t.modbus).cells()]
    assert len(cells) == len(set(cells))
    assert len({t.opcua for t in tags}) == len(list(tags))
