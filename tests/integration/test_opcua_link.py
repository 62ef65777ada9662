"""OpcUaLink against the soft PLC and a plain asyncua server: typed writes, refusals
before any write, one state shared with Modbus, restart and recovery."""

from __future__ import annotations

from pathlib import Path

import pytest
from asyncua import Server, ua

from agent.control.dispatcher import CommandDispatcher
from agent.protocols.base import SinkState
from agent.protocols.link import PlcRejected, PlcUnavailable
from agent.types import CommandKind, CommandOutcome, OutcomeStatus
from plc.softplc import SoftPlc
from tests.integration.plc_helpers import (
    STATION,
    TAGS,
    command,
    modbus_link,
    opcua_link,
    signals,
    wait_for,
)
from tests.support.ports import free_port

KEY = ("line1", "station1")


async def test_stop_over_opcua_is_seen_over_modbus(tmp_path: Path) -> None:
    mport, oport = free_port(), free_port()
    plc = SoftPlc(TAGS, modbus_port=mport, opcua_port=oport)
    await plc.start()
    ua_link = opcua_link(tmp_path, plc.opcua_endpoint)
    mb_link = modbus_link(tmp_path, mport)
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(ua_link, {KEY: signals("opcua")}, outcomes.append)
    for part in (ua_link, mb_link, disp):
        await part.start()
    try:
        assert await ua_link.wait_connected(10) and await mb_link.wait_connected(5)
        disp.submit(command(CommandKind.STOP, deadline_s=3.0, code=301))
        await wait_for(lambda: outcomes, what="stop outcome")
        assert outcomes[0].status is OutcomeStatus.ACKED
        assert plc.state.get(f"{STATION}.stop_request") is True
        assert await mb_link.read(TAGS.tags[f"{STATION}.stop_request"].modbus, 1) is True
        assert await mb_link.read(TAGS.tags[f"{STATION}.defect_code"].modbus, 1) == 301
        # and the other way round: a Modbus write shows on the OPC UA node
        await mb_link.write(TAGS.tags[f"{STATION}.last_event_seq"].modbus, 70000, 1)
        node = TAGS.tags[f"{STATION}.last_event_seq"].opcua
        await wait_for(lambda: plc.state.get(f"{STATION}.last_event_seq") == 70000)
        assert await ua_link.read(node, 1) == 70000
    finally:
        await disp.stop()
        await ua_link.close()
        await mb_link.close()
        await plc.stop()


async def test_type_mismatch_and_missing_node_refused_before_any_write(tmp_path: Path) -> None:
    plc = SoftPlc(TAGS, opcua_port=free_port())
    await plc.start()
    link = opcua_link(tmp_path, plc.opcua_endpoint)
    await link.start()
    code_node = TAGS.tags[f"{STATION}.defect_code"].opcua
    try:
        assert await link.wait_connected(10)
        await link.write(code_node, 7, 1)  # a Python int written as the node's UInt16
        assert plc.state.get(f"{STATION}.defect_code") == 7
        writes_before = plc.state.writes[f"{STATION}.defect_code"]
        for bad in (1.5, 70000, -1):
            with pytest.raises(PlcRejected, match="UInt16"):
                await link.write(code_node, bad, 1)
        with pytest.raises(PlcRejected, match="Boolean"):
            await link.write(TAGS.tags[f"{STATION}.stop_request"].opcua, 2, 1)
        assert plc.state.writes[f"{STATION}.defect_code"] == writes_before  # nothing reached it
        with pytest.raises(PlcRejected, match=r"ns=2;s=Line1\.Nope.*BadNodeIdUnknown"):
            await link.write("ns=2;s=Line1.Nope", True, 1)
        assert link.state is SinkState.CONNECTED
    finally:
        await link.close()
        await plc.stop()


async def _plain_server(port: int) -> tuple[Server, ua.NodeId]:
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/plain")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace("urn:test")
    var = await server.nodes.objects.add_variable(ua.NodeId("Stop", idx), "Stop", False)
    await var.set_writable()
    await server.start()
    return server, var.nodeid


async def test_server_restart_mid_run_and_recovery(tmp_path: Path) -> None:
    port = free_port()
    link = opcua_link(tmp_path, f"opc.tcp://127.0.0.1:{port}/plain")
    await link.start()  # nothing listens yet: start does not fail
    try:
        with pytest.raises(PlcUnavailable):
            await link.write("ns=2;s=Stop", True, 0.5)
        server, nodeid = await _plain_server(port)
        assert await link.wait_connected(10)
        await link.write(nodeid.to_string(), True, 1)
        assert await server.get_node(nodeid).read_value() is True
        await server.stop()
        await wait_for(lambda: link.state is not SinkState.CONNECTED, timeout=10, what="loss seen")
        server, nodeid = await _plain_server(port)
        try:
            assert await link.wait_connected(10)
            await link.write(nodeid.to_string(), True, 1)
            assert await server.get_node(nodeid).read_value() is True
            assert link.stats().connects >= 2 and link.stats().disconnects >= 1
        finally:
            await server.stop()
    finally:
        await link.close()


async def test_stop_by_method_call(tmp_path: Path) -> None:
    plc = SoftPlc(TAGS, opcua_port=free_port())
    await plc.start()
    obj, method = TAGS.stop_methods[STATION]
    link = opcua_link(tmp_path, plc.opcua_endpoint, stop_method=f"{obj}|{method}")
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, {KEY: signals("opcua")}, outcomes.append)
    await link.start()
    await disp.start()
    try:
        assert await link.wait_connected(10)
        disp.submit(command(CommandKind.STOP, deadline_s=3.0, code=302))
        await wait_for(lambda: outcomes, what="stop outcome")
        assert outcomes[0].status is OutcomeStatus.ACKED, outcomes[0].error
        assert plc.state.get(f"{STATION}.stop_request") is True
        assert plc.state.get(f"{STATION}.defect_code") == 302  # the method's argument
        assert plc.state.last_source[f"{STATION}.stop_request"] == "opcua-method"  # not a node write
        assert plc.state.get(f"{STATION}.defect_count") == 1
    finally:
        await disp.stop()
        await link.close()
        await plc.stop()
