"""File-drop sink on a real folder: JSON lines / CSV, atomic rename, rotation by size and
time, crash leftovers completed at start, failed writes cut back, readers never see half
a file."""

from __future__ import annotations

import asyncio
import csv
import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import agent.config  # noqa: F401  (import before any plugin module: circular import)
from agent.protocols.base import SinkContext, SinkRejected, SinkState, SinkUnavailable
from agent.protocols.file.config import FileSinkConfig
from agent.protocols.file.factory import build
from agent.protocols.file.sink import FileSink
from tests.support.mqtt_peer import AGENT, SITE, defect_record, stop_record, validate


async def started(tmp_path: Path, **cfg: Any) -> FileSink:
    config = FileSinkConfig.model_validate({"type": "file", "dir": "drop", **cfg})
    sink = build("mes", config, SinkContext(SITE, AGENT, tmp_path, tmp_path))
    assert isinstance(sink, FileSink)
    await sink.start()
    return sink


def finals(folder: Path, ext: str = "jsonl") -> list[Path]:
    return sorted(folder.glob(f"*.{ext}"))


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_jsonl_written_under_temp_name_renamed_at_close(tmp_path: Path) -> None:
    sink = await started(tmp_path)
    drop = tmp_path / "drop"
    d1, d2, s1 = defect_record(), defect_record(), stop_record()
    await sink.send([d1, s1, d2])
    assert finals(drop) == []  # nothing visible yet: the files are still being written
    parts = sorted(p.name for p in drop.glob(".*.part"))
    assert len(parts) == 2 and all(p.startswith(".mes_") for p in parts)
    await sink.close()
    defects, stops = (finals(drop)[0], finals(drop)[1]) if "defect" in finals(drop)[0].name \
        else (finals(drop)[1], finals(drop)[0])
    assert [r["event_id"] for r in jsonl(defects)] == [d1.id, d2.id]
    assert [r["event_id"] for r in jsonl(stops)] == [s1.id]
    for r in jsonl(defects):
        validate("defect", r)
    assert list(drop.glob(".*.part")) == []
    assert sink.stats().files_finalized == 2 and sink.state is SinkState.CLOSED


async def test_rotation_by_size_keeps_every_record_once(tmp_path: Path) -> None:
    sink = await started(tmp_path, rotate_bytes=2048)
    sent = [defect_record() for _ in range(20)]
    for i in range(0, 20, 4):
        await sink.send(sent[i:i + 4])
    await sink.close()
    files = finals(tmp_path / "drop")
    assert len(files) >= 3
    got = [r["event_id"] for f in files for r in jsonl(f)]
    assert got == [r.id for r in sent]


async def test_rotation_by_time_without_further_sends(tmp_path: Path) -> None:
    sink = await started(tmp_path, rotate_s=0.2)
    rec = defect_record()
    await sink.send([rec])
    for _ in range(200):
        if finals(tmp_path / "drop"):
            break
        await asyncio.sleep(0.02)
    files = finals(tmp_path / "drop")
    assert len(files) == 1 and jsonl(files[0])[0]["event_id"] == rec.id
    await sink.close()


async def test_csv_header_escaping_and_new_file_for_new_columns(tmp_path: Path) -> None:
    sink = await started(tmp_path, format="csv")
    a = defect_record()
    a.payload["rule"] = 'scratch>=0.8\nline "two", comma'
    b = defect_record()
    b.payload["operator_note"] = "extra column"
    await sink.send([a])
    await sink.send([b])
    await sink.close()
    files = finals(tmp_path / "drop", "csv")
    assert len(files) == 2
    first = list(csv.DictReader(files[0].open(newline="")))
    assert len(first) == 1 and len(files[0].read_text().splitlines()) == 2  # one line per row
    assert json.loads(first[0]["rule"]) == a.payload["rule"]
    assert first[0]["event_id"] == a.id and first[0]["replayed"] == "false"
    assert json.loads(first[0]["frames"]) == [41, 42]
    second = list(csv.DictReader(files[1].open(newline="")))
    assert second[0]["operator_note"] == "extra column"


async def test_crash_leftover_is_completed_at_start(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    good = [json.dumps({"event_id": f"e{i}"}) for i in range(2)]
    torn = drop / ".mes_defect_20261127T090000000000Z_0001.jsonl.part"
    torn.write_text("\n".join(good) + '\n{"event_id": "e2", "sco')
    (drop / ".mes_stop_20261127T090000000000Z_0002.jsonl.part").write_text('{"half')
    (drop / ".other_defect_x.jsonl.part").write_text("not ours\n")
    sink = await started(tmp_path)
    await sink.close()
    done = drop / "mes_defect_20261127T090000000000Z_0001.jsonl"
    assert [r["event_id"] for r in jsonl(done)] == ["e0", "e1"]
    assert sorted(p.name for p in drop.iterdir()) == [".other_defect_x.jsonl.part", done.name]
    assert sink.stats().files_recovered == 1


async def test_failed_write_is_cut_back_and_unavailable(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    sink = await started(tmp_path)
    first, lost, again = defect_record(), defect_record(), defect_record()
    await sink.send([first])
    real_fsync = os.fsync

    def disk_full(fd: int) -> None:  # fault injection: a full disk cannot be made on demand
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(SinkUnavailable, match="No space left"):
        await sink.send([lost])
    assert sink.state is SinkState.DISCONNECTED
    monkeypatch.setattr(os, "fsync", real_fsync)
    await sink.send([lost, again])  # the outbox retries the batch
    assert sink.state is SinkState.CONNECTED
    await sink.close()
    ids = [r["event_id"] for f in finals(tmp_path / "drop") for r in jsonl(f)]
    assert ids == [first.id, lost.id, again.id]
    assert sink.stats().write_errors == 1


async def test_not_json_serialisable_record_is_rejected(tmp_path: Path) -> None:
    sink = await started(tmp_path)
    bad, ok = defect_record(), defect_record()
    bad.payload["score"] = float("nan")
    with pytest.raises(SinkRejected) as err:
        await sink.send([bad, ok])
    assert err.value.record_ids == (bad.id,)
    await sink.close()
    assert [r["event_id"] for r in jsonl(finals(tmp_path / "drop")[0])] == [ok.id]


async def test_a_polling_reader_never_sees_half_a_file(tmp_path: Path) -> None:
    sink = await started(tmp_path, rotate_bytes=1024)
    drop = tmp_path / "drop"
    stop = threading.Event()
    seen: dict[str, int] = {}
    problems: list[str] = []

    def reader() -> None:  # a legacy MES polling the folder for *.jsonl
        while not stop.is_set():
            for f in finals(drop):
                try:
                    text = f.read_text()
                    rows = [json.loads(line) for line in text.splitlines()]
                except (ValueError, FileNotFoundError) as exc:
                    problems.append(f"{f.name}: {exc}")
                    continue
                if not text.endswith("\n"):
                    problems.append(f"{f.name}: torn")
                if seen.setdefault(f.name, len(rows)) != len(rows):
                    problems.append(f"{f.name} changed after it appeared")

    t = threading.Thread(target=reader, name="test-drop-reader")
    t.start()
    try:
        for _ in range(15):
            await sink.send([defect_record() for _ in range(3)])
        await sink.close()
    finally:
        stop.set()
        t.join(5)
    assert problems == []
    assert sum(len(jsonl(f)) for f in finals(drop)) == 45
