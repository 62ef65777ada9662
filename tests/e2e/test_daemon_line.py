"""The daemon end to end against the soft PLC and a real Mosquitto (issue 9)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from plc.softplc import SoftPlc
from tests.e2e.harness import Daemon, dropped_records, truth_defect_parts, wait_until, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_collector import Collector

SCHEDULE = [None, "scratch", None, "spot", None, "crack", None, "dent"]
SEED = 11


async def test_defects_records_stop_and_reset(tmp_path: Path, mosquitto: Mosquitto,
                                              softplc: SoftPlc) -> None:
    frames = 8 * 13 * 2  # two cycles of the schedule with the gaps between parts
    cfg = write_config(tmp_path, mqtt_port=mosquitto.port, modbus_port=softplc.modbus_port or 0,
                       seed=SEED, schedule=SCHEDULE, fps=25, max_frames=frames)
    collector = Collector("127.0.0.1", mosquitto.port)
    daemon = Daemon(cfg)
    try:
        daemon.wait_started()
        # the crack (action stop) reaches the soft PLC and the conveyor stops
        await wait_until(lambda: softplc.state.get("line1.station1.stop_request"), 40,
                         "stop_request at the soft PLC")
        await wait_until(lambda: not softplc.conveyor.running, 5, "conveyor stopped")
        assert softplc.state.get("line1.station1.defect_code") == 301
        # operator reset at the PLC: the agent sees it, clears the stop, the line runs again
        softplc.press_reset()
        await wait_until(lambda: not softplc.state.get("line1.station1.stop_request"), 10,
                         "agent cleared stop_request after the reset")
        await wait_until(lambda: softplc.conveyor.running, 5, "conveyor running after reset")
        # every frame inspected: the finite camera ends, then all defect records are delivered
        expected = truth_defect_parts(SEED, frames, SCHEDULE)
        await wait_until(lambda: len(dropped_records(tmp_path / "drop")) >= len(expected) - 1,
                         60, "defect records in the file drop")
        await asyncio.sleep(1.0)
        rc, seconds = await asyncio.to_thread(daemon.terminate)
        assert rc == 0 and seconds < 5, (rc, seconds, daemon.log()[-2000:])
    finally:
        daemon.ensure_dead()
        collector.close()
    dropped = dropped_records(tmp_path / "drop")
    got = sorted(r["defect_class"] for r in dropped)
    # within the bundled model's measured error: at most one part missed or extra
    assert abs(len(got) - len(expected)) <= 1, (got, sorted(expected))
    assert len(set(got) & set(expected)) >= 3, (got, expected)
    mqtt_defects = [m.json() for m in collector.on_topic("/line1/station1/defect")]
    assert [d["event_id"] for d in mqtt_defects] == [d["event_id"] for d in dropped]
    stops = [m.json() for m in collector.on_topic("/line1/station1/stop")]
    assert any(s["kind"] == "stop" and s["status"] == "acked" for s in stops), stops
    status = [m.json() for m in collector.on_topic("/agent/edge-e2e/status")]
    assert status and status[-1]["state"] == "offline"


async def test_operator_reset_from_the_cli_releases_the_latch(tmp_path: Path,
                                                             mosquitto: Mosquitto,
                                                             softplc: SoftPlc) -> None:
    """`edge-agent reset` goes over the authenticated MQTT command path: signed with a wrong
    key it is refused (and the CLI, unable to verify the answer, says "no answer"); with the
    right key it clears the agent's latch and its stop_request at the PLC. The captured
    command, republished 3 times, resets nothing more."""
    import subprocess
    import sys

    from tests.support.mqtt_peer import subscriber

    (tmp_path / "cmd-key").write_text("9c1f0e7a2b3d4c5e6f708192a3b4c5d6\n")
    cfg = write_config(tmp_path, mqtt_port=mosquitto.port,
                       modbus_port=softplc.modbus_port or 0, seed=SEED,
                       schedule=[None, "crack", *[None] * 400], fps=25,  # one crack: a second
                       # one at the moment of the reset would latch again before the poll saw it
                       mqtt_extra={"commands": {"enabled": True, "key": "${file:cmd-key}"}})
    daemon = Daemon(cfg)

    def cli(config: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent", "reset", "--config", str(config),
                               "--line", "line1", "--station", "station1", "--timeout", "3"],
                              capture_output=True, text=True, timeout=30)

    cmd_topic = "edge/e2e/agent/edge-e2e/cmd"
    try:
        daemon.wait_started()
        await wait_until(lambda: softplc.state.get("line1.station1.stop_request"), 40,
                         "stop_request at the soft PLC")
        wrong = tmp_path / "wrong.yaml"
        wrong.write_text(cfg.read_text().replace("${file:cmd-key}", "guess-guess-guess-guess"))
        refused = await asyncio.to_thread(cli, wrong)
        assert refused.returncode == 1 and "no answer" in refused.stderr, refused
        assert "1 unauthenticated answer(s) ignored" in refused.stderr, refused
        assert softplc.state.get("line1.station1.stop_request")
        with subscriber("127.0.0.1", mosquitto.port, cmd_topic) as spy:
            done = await asyncio.to_thread(cli, cfg)
            assert done.returncode == 0 and "accepted" in done.stdout, done
            captured = (await asyncio.to_thread(spy.next, cmd_topic)).payload
        await wait_until(lambda: not softplc.state.get("line1.station1.stop_request"), 10,
                         "stop_request cleared by the operator reset")
        with subscriber("127.0.0.1", mosquitto.port) as attacker:
            for _ in range(3):
                attacker.client.publish(cmd_topic, captured, qos=1).wait_for_publish(5)
        await wait_until(lambda: sum(a["event"] == "operator_command"
                                     for a in daemon.audit()) == 5, 10, "5 attempts audited")
        attempts = [a for a in daemon.audit() if a["event"] == "operator_command"]
        assert [a["code"] for a in attempts] == ["unauthenticated", "accepted", "replay",
                                                 "replay", "replay"], attempts
        assert all(a["client"] == "edge-agent-cli" and a["id"] for a in attempts)
        assert sum(a["event"] == "reset" for a in daemon.audit()) == 1
        _, metrics = daemon.get("/metrics")
        counted = {line.split("result=\"")[1].split("\"")[0]: float(line.rsplit(" ", 1)[1])
                   for line in metrics.decode().splitlines()
                   if line.startswith("edge_agent_operator_commands_total{")}
        assert counted == {"accepted": 1, "unauthenticated": 1, "replay": 3}, counted
        rc, _ = await asyncio.to_thread(daemon.terminate)
        assert rc == 0
    finally:
        daemon.ensure_dead()
