"""`edge-agent outbox stats|list|dead|retry` on the state_dir of a config, while the store is
open in another process (the daemon)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main as cli
from agent.config.models import OutboxSettings
from agent.outbox import Outbox
from agent.protocols.outbox_policy import OutboxPolicy
from agent.types import Record, RecordKind, new_event_id
from tests.conftest import REPO


def write_config(tmp_path: Path) -> Path:
    text = (REPO / "config" / "demo.yaml").read_text()
    text = text.replace("state_dir: ../var/demo", f"state_dir: {tmp_path / 'state'}")
    text = text.replace("../models/", f"{REPO / 'models'}/").replace("../var/demo/drop",
                                                                     str(tmp_path / "drop"))
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    return path


def rec(n: int) -> Record:
    return Record(id=new_event_id(), kind=RecordKind.DEFECT, line="line1", station="station1",
                  payload={"schema_version": 1, "n": n})


async def fill(tmp_path: Path) -> tuple[Outbox, list[Record]]:
    box = Outbox.open(tmp_path / "state" / "outbox.sqlite3", OutboxSettings(),
                      {"mqtt": OutboxPolicy(), "drop": OutboxPolicy()})
    records = [rec(i) for i in range(5)]
    for r in records:
        assert await box.enqueue("mqtt", r)
    assert await box.enqueue("drop", rec(9))
    leased = await box.lease("mqtt", 2)
    await box.bury("mqtt", [leased[0].seq], "broker refused: 0x99 payload format invalid")
    await box.release("mqtt", [leased[1].seq])
    return box, records


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert cli(["outbox", *argv[:2], "--json", *argv[2:]]) == 0
    return json.loads(capsys.readouterr().out)


async def test_stats_from_another_process_while_open(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    box, _ = await fill(tmp_path)
    try:
        out = subprocess.run([sys.executable, "-m", "agent", "outbox", "--config", str(cfg),
                              "--json", "stats"], capture_output=True, text=True, cwd=REPO,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        sinks = json.loads(out.stdout)["sinks"]
        assert sinks["mqtt"]["depth"] == 4 and sinks["mqtt"]["dead"] == 1
        assert sinks["mqtt"]["retried"] == 1 and sinks["mqtt"]["dead_lettered"] == 1
        assert sinks["drop"]["depth"] == 1
    finally:
        await box.close()


async def test_list_dead_and_retry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_config(tmp_path))
    box, records = await fill(tmp_path)
    try:
        listed = run_json(capsys, "--config", cfg, "list", "--sink", "mqtt")
        assert [r["id"] for r in listed] == [r.id for r in records[1:]]  # type: ignore[union-attr]
        assert listed[0]["attempts"] == 1  # type: ignore[index]
        dead = run_json(capsys, "--config", cfg, "dead")
        assert [(d["id"], d["reason"]) for d in dead] == [  # type: ignore[union-attr]
            (records[0].id, "broker refused: 0x99 payload format invalid")]
        assert run_json(capsys, "--config", cfg, "retry", "--id", "nope") == {"retried": 0}
        assert run_json(capsys, "--config", cfg, "retry", "--id", records[0].id) == {"retried": 1}
        assert run_json(capsys, "--config", cfg, "dead") == []
        leased = await box.lease("mqtt", 10)  # the open store sees it, first in line again
        assert [i.record.id for i in leased] == [r.id for r in records]
        assert leased[0].record.replayed
        assert cli(["outbox", "--config", cfg, "stats"]) == 0
        assert "mqtt" in capsys.readouterr().out
    finally:
        await box.close()


def test_missing_outbox_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_config(tmp_path))
    assert cli(["outbox", "--config", cfg, "stats"]) == 1
    err = capsys.readouterr().err
    assert "no outbox at" in err and str(tmp_path / "state") in err


def test_foreign_file_is_refused_untouched(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_config(tmp_path))
    (tmp_path / "state").mkdir()
    target = tmp_path / "state" / "outbox.sqlite3"
    target.write_bytes(b"garbage" * 100)
    assert cli(["outbox", "--config", cfg, "retry"]) == 1
    assert "outbox" in capsys.readouterr().err
    assert target.read_bytes() == b"garbage" * 100
