"""The daemon's stop path in one process, against a real Modbus server that records what
it takes: what follows a command off the stop path chains on its "sent" future
(`CommandDispatcher.submit`). When that future resolves the PLC has taken the command's
reject write; the command's audit line, its decision's records and its inspection's
bookkeeping all come after that; a command flushed at shutdown still leaves its outcome
and its stop record, and no sent future is left pending."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pymodbus.server import ModbusTcpServer

from agent.app import Agent, RunLimits
from agent.configfile import parse_config
from agent.decision.views import Decision
from agent.types import Command, CommandKind, Inspection, Record, new_event_id
from tests.integration.plc_helpers import plain_modbus_server
from tests.support.modbus_peer import RecordingContext

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
            "sinks": ["drop"],
            "signals": {"reject": "coil:1", "alarm": "coil:2", "defect_code": "hr:10"},
            "rules": rules}}}},
    })


class PlcTakes(RecordingContext):
    """The server's store, on the test's loop: every write it took, in order."""

    def __init__(self) -> None:
        super().__init__([], None)
        self.rejects = 0  # reject bit (coil 1) set: one per reject command

    async def async_setValues(self, device_id: int, func_code: int, address: int,  # type: ignore[override]
                              values: Any) -> None:
        if func_code in (5, 15) and address == 1 and values and bool(values[0]):
            self.rejects += 1
        for i, v in enumerate(values):
            self.cells[("coil" if func_code in (5, 15) else "hr", address + i)] = int(v)


class Sends:
    """Observes the dispatcher's public `submit`: each command's sent future, and what the
    PLC had taken when it resolved (registered before anything else chains on it)."""

    def __init__(self, agent: Agent, plc: PlcTakes) -> None:
        self.by_event: dict[str, asyncio.Future[None]] = {}
        self.by_frame: dict[int, asyncio.Future[None]] = {}
        self.resolved: dict[str, tuple[datetime, int, int]] = {}  # wall, rejects taken, nth
        dispatcher = agent.plc.dispatchers["plc"]
        submit = dispatcher.submit

        def observed(cmd: Command) -> asyncio.Future[None]:
            sent = submit(cmd)
            nth = len(self.by_event) + 1
            self.by_event[cmd.event_id] = sent
            self.by_frame[max(cmd.evidence.get("frames") or [-1])] = sent
            sent.add_done_callback(lambda _: self.resolved.__setitem__(
                cmd.event_id, (datetime.now(UTC), plc.rejects, nth)))
            return sent

        dispatcher.submit = observed  # type: ignore[method-assign]


async def recording_server(port: int) -> tuple[ModbusTcpServer, PlcTakes]:
    plc = PlcTakes()
    server = ModbusTcpServer(plc, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    return server, plc


def audit_lines(tmp: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in
            (tmp / "state" / "audit.jsonl").read_text().splitlines()]


async def test_what_follows_a_command_chains_on_its_sent_future(tmp_path: Path,
                                                                port: int) -> None:
    server, plc = await recording_server(port)
    loaded = parse_config(config(tmp_path, port), str(tmp_path / "agent.yaml"), tmp_path)
    agent = Agent(loaded, RunLimits(max_frames=240))
    sends = Sends(agent, plc)
    routed_unsent: list[str] = []  # records of a command routed before it was sent
    bookkept_unsent: list[int] = []  # frames bookkept before their command was sent
    route, bookkeeping = agent.pipeline.submit, agent.pipeline.bookkeeping  # to the router

    def routed(record: Record) -> None:
        sent = sends.by_event.get(record.id)
        if sent is not None and not sent.done():
            routed_unsent.append(record.id)
        route(record)

    def bookkept(rt: Any, insp: Inspection) -> None:
        sent = sends.by_frame.get(insp.frame_seq)
        if sent is not None and not sent.done():
            bookkept_unsent.append(insp.frame_seq)
        bookkeeping(rt, insp)

    agent.pipeline.submit = routed
    agent.pipeline.bookkeeping = bookkept  # type: ignore[method-assign]
    await agent.start()
    try:
        await asyncio.wait_for(agent.wait(), 60)
    finally:
        await agent.shutdown()
        await server.shutdown()
    assert len(sends.by_event) >= 5, f"only {len(sends.by_event)} commands: the scene should reject"
    assert all(f.done() for f in sends.by_event.values())
    # when a command's sent future resolved, the PLC had taken its reject write
    assert all(taken >= nth for _, taken, nth in sends.resolved.values()), sends.resolved
    # its audit line was written after that
    audited = {a["event_id"]: datetime.fromisoformat(a["time"]) for a in audit_lines(tmp_path)
               if a["event"] == "command"}
    assert set(audited) == set(sends.by_event)
    assert all(audited[eid] >= wall for eid, (wall, _, _) in sends.resolved.items())
    assert routed_unsent == [] and bookkept_unsent == []
    assert agent.plc.dispatchers["plc"].stats().acked == len(sends.by_event)


async def test_a_command_flushed_at_shutdown_still_leaves_its_stop_record(tmp_path: Path,
                                                                           port: int) -> None:
    """The PLC is gone when commands come: stops (no signal mapped: failed at once) and
    alarms (still waiting for the link when the daemon shuts down). Each outcome is
    audited after its command line and reaches the MES sink as a record, and no sent
    future is left pending."""
    server = await plain_modbus_server(port)
    loaded = parse_config(config(tmp_path, port), str(tmp_path / "agent.yaml"), tmp_path)
    agent = Agent(loaded, RunLimits(max_frames=30))
    await agent.start()
    await asyncio.wait_for(agent.wait(), 60)
    await server.shutdown()  # the PLC is gone
    now = time.monotonic()
    cmds = [Command(kind=kind, plc="plc", line="l1", station="s1", event_id=new_event_id(),
                    deadline=now + 30, created=now, defect_code=301)
            for kind in (CommandKind.STOP, CommandKind.STOP, CommandKind.ALARM,
                         CommandKind.ALARM)]  # alarms: retried against the dead link
    futures = agent.pipeline.apply(Decision(commands=tuple(cmds)))
    await asyncio.sleep(0.3)
    # the stops failed at once; the first alarm's attempt (its write to a dead socket)
    # may be over; the one behind it waits for the link
    assert len(futures) == 4 and futures[0].done() and futures[1].done()
    assert not futures[3].done()
    await agent.shutdown()
    assert all(f.done() for f in futures)
    audit = audit_lines(tmp_path)
    delivered = "".join(p.read_text() for p in (tmp_path / "drop").rglob("*") if p.is_file()
                        and p.suffix != ".jpg")  # evidence images beside the records
    kept = b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("outbox*")
                    if p.is_file()).decode("utf-8", "replace")
    for cmd in cmds:
        lines = [a for a in audit if a.get("event_id") == cmd.event_id]
        assert [a["event"] for a in lines] == ["command", "command_outcome"], lines
        assert lines[1]["status"] in (("failed",) if cmd.kind is CommandKind.STOP
                                      else ("failed", "expired", "unconfirmed")), lines
        assert cmd.event_id in delivered or cmd.event_id in kept, \
            f"the stop record of flushed command {cmd.event_id} is lost"
