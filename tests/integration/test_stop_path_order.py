"""The daemon's stop path in one process, against a real Modbus server: a command is on
the wire before the slow bookkeeping of the same decision (the fsynced audit line, drift,
metrics) runs, and the next command for the same PLC goes out before the previous
outcome is audited."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from agent.app import Agent, RunLimits
from agent.config import parse_config
from tests.integration.plc_helpers import plain_modbus_server

REPO = Path(__file__).resolve().parents[2]


def config(tmp: Path, port: int) -> str:
    rules = [{"class": c, "min_score": 0.5, "k": 1, "n": 1, "clear_after": 1,
              "action": "reject", "defect_code": code}
             for c, code in (("scratch", 101), ("spot", 201), ("crack", 301), ("dent", 401))]
    return yaml.safe_dump({
        "site": "t", "agent_id": "stop-order", "state_dir": str(tmp / "state"),
        "health": {"listen": ""},
        "cameras": {"cam": {"type": "synthetic", "seed": 3, "width": 320, "height": 240,
                            "fps": 60, "frames_per_part": 2, "defect_rate": 0.6}},
        "models": {"m": {"path": str(REPO / "models" / "defect-cnn")}},
        "plcs": {"plc": {"type": "modbus", "host": "127.0.0.1", "port": port}},
        "sinks": {"drop": {"type": "file", "dir": str(tmp / "drop")}},
        "lines": {"l1": {"stations": {"s1": {
            "camera": "cam", "model": "m", "latency_budget_ms": 1000, "plc": "plc",
            "sinks": ["drop"], "signals": {"reject": "coil:1", "defect_code": "hr:10"},
            "rules": rules}}}},
    })


async def test_command_is_sent_before_its_audit_line_and_bookkeeping(tmp_path: Path,
                                                                       port: int) -> None:
    server = await plain_modbus_server(port)
    loaded = parse_config(config(tmp_path, port), str(tmp_path / "agent.yaml"), tmp_path)
    agent = Agent(loaded, RunLimits(max_frames=240))
    seen: list[tuple[int, int]] = []  # (commands audited so far, writes started so far)
    bookkept_after_send: list[bool] = []
    await agent.start()
    try:
        dispatcher = agent.plc.dispatchers["plc"]
        write = agent.audit.write
        bookkeeping = agent._inspection_bookkeeping

        def audit(event: str, **fields: Any) -> None:
            if event == "command":
                seen.append((len(seen) + 1, dispatcher.stats().write_attempts))
            write(event, **fields)

        def after(rt: Any, insp: Any) -> None:
            bookkept_after_send.append(dispatcher.stats().write_attempts
                                       >= dispatcher.stats().submitted)
            bookkeeping(rt, insp)
        agent.audit.write = audit  # type: ignore[method-assign]
        agent._inspection_bookkeeping = after  # type: ignore[method-assign]
        await asyncio.wait_for(agent.wait(), 60)
    finally:
        await agent.shutdown()
        await server.shutdown()
    assert len(seen) >= 5, f"only {len(seen)} commands: the scene should make rejects"
    assert all(started >= n for n, started in seen), seen  # its write had started
    assert all(bookkept_after_send)
    assert dispatcher.stats().acked == len(seen)
