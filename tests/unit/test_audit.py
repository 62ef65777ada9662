"""Audit log: append-only JSON lines with UTC time, durable, rotated, never raising."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from agent.audit import AuditLog, command_fields, outcome_fields
from agent.types import Command, CommandKind, CommandOutcome, OutcomeStatus, Result


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _outcome() -> CommandOutcome:
    cmd = Command(CommandKind.STOP, "softplc", "L1", "S1", "ev-42", deadline=100.25,
                  created=100.0, defect_code=3, part_id="part-000007",
                  rule="scratch>=0.80 k2/n3 -> stop",
                  evidence={"frames": [11, 12], "scores": [0.91, 0.88], "model_sha256": "abc",
                            "provider": "CPUExecutionProvider"})
    return CommandOutcome(cmd, OutcomeStatus.ACKED, attempts=2, t_done=100.012, latency_ms=12.0)


def test_command_outcome_line_has_trigger_outcome_and_timings(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=1 << 20, keep=3)
    before = datetime.now(UTC)
    log.write("command.outcome", **outcome_fields(_outcome()))
    [line] = _lines(tmp_path / "audit.jsonl")  # readable right after write: flushed
    log.close()
    when = datetime.fromisoformat(line["time"])
    assert when.utcoffset() == timedelta(0) and when >= before.replace(microsecond=0)
    assert line["event"] == "command.outcome"
    assert line["kind"] == "stop" and line["status"] == "acked" and line["attempts"] == 2
    assert line["rule"] == "scratch>=0.80 k2/n3 -> stop"
    assert line["evidence"]["frames"] == [11, 12] and line["evidence"]["scores"] == [0.91, 0.88]
    assert line["latency_ms"] == 12.0 and line["deadline_ms"] == 250.0
    assert line["done_after_ms"] == 12.0
    assert command_fields(_outcome().command)["event_id"] == "ev-42"


def test_appends_across_restarts_and_serialises_odd_values(tmp_path: Path) -> None:
    path = tmp_path / "state" / "audit.jsonl"
    log = AuditLog(path, max_bytes=1 << 20, keep=3)
    log.write("config.reload", ok=True, changed=("L1.S1.rules",))
    log.close()
    log = AuditLog(path, max_bytes=1 << 20, keep=3)  # a restart appends, never truncates
    log.write("operator.reset", result=Result.NG, score=np.float32(0.5),
              at=datetime(2026, 1, 1, tzinfo=UTC), cmd=_outcome().command, path=tmp_path)
    log.close()
    first, second = _lines(path)
    assert first == {**first, "event": "config.reload", "ok": True, "changed": ["L1.S1.rules"]}
    assert second["result"] == "NG" and second["score"] == 0.5
    assert second["at"] == "2026-01-01T00:00:00+00:00"
    assert second["cmd"]["kind"] == "stop" and second["path"] == str(tmp_path)
    assert path.stat().st_mode & 0o007 == 0  # not world-readable


def test_rotation_keeps_the_newest_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=400, keep=2)
    for i in range(40):
        log.write("command.outcome", seq=i, pad="x" * 40)
    stats = log.stats()
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(p.stat().st_size <= 400 for p in tmp_path.iterdir())
    seqs = [d["seq"] for name in ("audit.jsonl.2", "audit.jsonl.1", "audit.jsonl")
            for d in _lines(tmp_path / name)]
    assert seqs == list(range(seqs[0], 40))  # contiguous, oldest first, newest kept
    assert stats.written == 40 and stats.rotations >= 3 and stats.failed == 0


def test_write_errors_are_counted_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    log = AuditLog(blocker / "audit.jsonl", max_bytes=4096, keep=1)
    log.write("command.outcome", seq=1)  # the state dir cannot be created
    assert log.stats().failed == 1 and log.stats().written == 0
    log.close()
    log.write("command.outcome", seq=2)  # after close
    assert log.stats().failed == 2
