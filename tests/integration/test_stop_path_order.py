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
from agent.configfile import parse_config
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


async def test_a_command_flushed_at_shutdown_still_leaves_its_stop_record(tmp_path: Path,
                                                                           port: int) -> None:
    """The PLC is gone and a stop is still being retried when the daemon shuts down: its
    outcome (reported after the sends) is audited and reaches the MES sink as a record."""
    import json
    import time

    from agent.types import Command, CommandKind, new_event_id

    server = await plain_modbus_server(port)
    loaded = parse_config(config(tmp_path, port), str(tmp_path / "agent.yaml"), tmp_path)
    agent = Agent(loaded, RunLimits(max_frames=30))
    await agent.start()
    await asyncio.wait_for(agent.wait(), 60)
    await server.shutdown()  # the PLC is gone
    now = time.monotonic()
    cmds = [Command(kind=CommandKind.STOP, plc="plc", line="l1", station="s1",
                    event_id=new_event_id(), deadline=now + 30, created=now, defect_code=301)
            for _ in range(2)]  # one retried against the dead link, one queued behind it
    for cmd in cmds:
        agent._submit_command(cmd)
    await asyncio.sleep(0.3)
    await agent.shutdown()
    audit = [json.loads(line) for line in
             (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    delivered = "".join(p.read_text() for p in (tmp_path / "drop").rglob("*") if p.is_file()
                        and p.suffix != ".jpg")  # evidence images beside the records
    kept = b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("outbox*")
                    if p.is_file()).decode("utf-8", "replace")
    for cmd in cmds:
        outcomes = [a for a in audit if a["event"] == "command_outcome"
                    and a.get("event_id") == cmd.event_id]
        assert len(outcomes) == 1 and outcomes[0]["status"] == "failed", outcomes
        assert cmd.event_id in delivered or cmd.event_id in kept, \
            f"the stop record of flushed command {cmd.event_id} is lost"
