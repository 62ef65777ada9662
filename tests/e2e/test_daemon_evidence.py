"""Evidence with the daemon as a process: stored, delivered by the file drop, served behind the
token, exported (while it runs) and checked against the synthetic camera's ground truth; a
SIGKILL mid-write; a full disk (a small tmpfs) that stops neither inspection nor commands."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agent.evidence.store import EvidenceStore
from plc.softplc import SoftPlc
from tests.conftest import REPO
from tests.e2e.evidence_helpers import (
    evidence_config,
    get,
    metric,
    sha256,
    truth_by_seq,
    wait_serving,
)
from tests.e2e.harness import Daemon, dropped_records, wait_until
from tests.support.mosquitto import Mosquitto

SCHEDULE = [None, "scratch", None, "spot", None, "crack", None, "dent"]
SEED = 11


async def settled(daemon: Daemon, timeout: float = 60) -> None:
    """Until the finite camera has ended: no new inspection for 1.5 s."""
    deadline = time.monotonic() + timeout
    last = -1.0
    while time.monotonic() < deadline:
        now = metric(daemon, "edge_agent_inspections_total")
        if now == last:
            return
        last = now
        await asyncio.sleep(1.5)
    raise AssertionError("inspections never settled")


def cli(*args: str) -> tuple[int, str, float]:
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "agent", "evidence", *args], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr, time.monotonic() - t0


async def test_evidence_stored_served_dropped_and_exported(tmp_path: Path, mosquitto: Mosquitto,
                                                           softplc: SoftPlc) -> None:
    frames = 8 * 13 * 2
    cfg = evidence_config(tmp_path, {"sample_ok_every_s": 0.5}, mqtt_port=mosquitto.port,
                          modbus_port=softplc.modbus_port or 0, seed=SEED, schedule=SCHEDULE,
                          fps=25, max_frames=frames)
    daemon = Daemon(cfg)
    try:
        wait_serving(daemon)
        await wait_until(lambda: len(dropped_records(tmp_path / "drop")) >= 3, 40,
                         "three defect records")
        # export while the daemon runs: read-only, it neither waits for nor stops the daemon
        before = metric(daemon, "edge_agent_inspections_total")
        rc, out, seconds = await asyncio.to_thread(
            cli, "export", "--config", str(cfg), "--out", str(tmp_path / "live"))
        assert rc == 0 and json.loads(out)["images"] >= 3, out
        await wait_until(lambda: metric(daemon, "edge_agent_inspections_total") > before, 5,
                         "inspections going on")
        defect = dropped_records(tmp_path / "drop")[0]
        ref = defect["evidence"]
        # served behind the same token as /status
        assert get(daemon, f"/evidence/{ref['id']}.jpg", token=None)[0] == 401
        assert get(daemon, f"/evidence/{ref['id']}.jpg", token="wrong")[0] == 401
        code, body = get(daemon, f"/evidence/{ref['id']}.jpg")
        assert code == 200 and len(body) == ref["bytes"]
        import hashlib
        assert hashlib.sha256(body).hexdigest() == ref["sha256"]
        assert get(daemon, f"/evidence/{ref['id']}.annotated.jpg")[0] == 200
        assert get(daemon, f"/evidence/{ref['id']}.json")[0] == 200
        assert get(daemon, "/evidence/01a22736-a3fd-7460-b18d-1ee92a456731.jpg")[0] == 404
        assert get(daemon, "/evidence/..%2F..%2Fetc%2Fpasswd")[0] == 404
        assert ref["url"].endswith(f"/evidence/{ref['id']}.jpg")
        await settled(daemon)
        rc, _ = await asyncio.to_thread(daemon.terminate)
        assert rc == 0
    finally:
        daemon.ensure_dead()
    drop = tmp_path / "drop"
    defects = dropped_records(drop)
    assert len(defects) >= 6
    for d in defects:  # the file drop: every record's image beside it, byte for byte
        assert sha256(drop / f"{d['evidence']['id']}.jpg") == d["evidence"]["sha256"]
    truth = truth_by_seq(SEED, frames, SCHEDULE)
    store = EvidenceStore(tmp_path / "state" / "evidence")
    metas = list(store.sidecars())
    assert {"defect", "sample"} <= {r for m in metas for r in m["reasons"]}
    assert all(m["truth"] == truth[m["frame_seq"]] for m in metas)
    # export: imagefolder and yolo, read back and checked against the ground truth
    rc, out, _ = cli("export", "--config", str(cfg), "--out", str(tmp_path / "folders"))
    assert rc == 0, out
    seq = {m["evidence"]["id"]: m["frame_seq"] for m in metas}
    exported = list((tmp_path / "folders").glob("*/*.jpg"))
    assert len(exported) == len(metas)
    wrong = [(p.parent.name, truth[seq[p.stem]], p.stem) for p in exported
             if p.parent.name != truth[seq[p.stem]]]
    assert wrong == [], wrong
    rc, out, _ = cli("export", "--config", str(cfg), "--format", "yolo", "--whole-frame",
                     "--class", "scratch", "--out", str(tmp_path / "yolo"))
    assert rc == 0, out
    data = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    names = data["names"]
    labels = list((tmp_path / "yolo" / "labels").glob("*/*.txt"))
    assert labels and len(labels) == json.loads(out)["images"]
    for lab in labels:
        image = tmp_path / "yolo" / "images" / lab.parent.name / f"{lab.stem}.jpg"
        assert image.exists() and (tmp_path / "yolo" / data["train"]).is_dir()
        rows = [line.split() for line in lab.read_text().splitlines()]
        assert [names[int(r[0])] for r in rows] == [truth[seq[lab.stem]]] == ["scratch"]
        assert all(0 <= float(v) <= 1 for r in rows for v in r[1:])
    rc, out, _ = cli("list", "--config", str(cfg), "--verdict", "NG", "--json")
    assert rc == 0 and {m["verdict"] for m in json.loads(out)} == {"NG"}
    rc, out, _ = cli("show", defects[0]["evidence"]["id"], "--config", str(cfg))
    assert rc == 0 and json.loads(out)["model"]["sha256"] == defects[0]["model"]["sha256"]
    rc, out, _ = cli("show", "not-an-id", "--config", str(cfg))
    assert rc == 2 and "not an evidence id" in out and "Traceback" not in out


async def test_sigkill_mid_write_leaves_no_record_on_a_torn_image(
        tmp_path: Path, mosquitto: Mosquitto, softplc: SoftPlc) -> None:
    cfg = evidence_config(tmp_path, {"sample_ok_rate": 1.0, "queue_size": 256},
                          mqtt_port=mosquitto.port, modbus_port=softplc.modbus_port or 0,
                          seed=SEED, schedule=SCHEDULE, fps=60,
                          rules=[{"class": c, "min_score": 0.6, "k": 1, "n": 1, "action": "alert",
                                  "defect_code": i + 1}
                                 for i, c in enumerate(("scratch", "spot", "crack", "dent"))])
    daemon = Daemon(cfg)
    try:
        wait_serving(daemon)
        await wait_until(lambda: len(dropped_records(tmp_path / "drop")) >= 4, 40, "defects")
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(10)
    finally:
        daemon.ensure_dead()
    root = tmp_path / "state" / "evidence"
    referenced = [r["evidence"] for r in dropped_records(tmp_path / "drop")]
    assert referenced
    for ev in referenced:  # every image a record points to is complete
        assert sha256(root / ev["path"]) == ev["sha256"]
    store = EvidenceStore(root)
    store.sweep()  # what the next start does with anything torn
    complete = set(store.ids())
    leftovers = [p for p in root.rglob("*") if p.is_file() and p.name[:36] not in complete]
    assert leftovers == [] and not list(root.rglob(".*"))
    assert {ev["id"] for ev in referenced} <= complete


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "state" / "evidence"
    mount.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_full_disk_alarm_while_inspection_and_commands_go_on(
        tmp_path: Path, tiny_disk: Path, mosquitto: Mosquitto, softplc: SoftPlc) -> None:
    ballast = tiny_disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:  # fill the file system: not even one image fits
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    cfg = evidence_config(tmp_path, {"sample_ok_rate": 1.0, "min_free_bytes": 0,
                                     "max_bytes": 200_000},
                          mqtt_port=mosquitto.port, modbus_port=softplc.modbus_port or 0,
                          seed=SEED, schedule=SCHEDULE, fps=25)
    daemon = Daemon(cfg)
    try:
        wait_serving(daemon)
        alarms = lambda: dropped_records(tmp_path / "drop", "alarm")  # noqa: E731
        await wait_until(lambda: any(a["event"] == "raised" for a in alarms()), 30, "alarm")
        raised = next(a for a in alarms() if a["event"] == "raised")
        assert raised["reason"].startswith("evidence") and "evidence" not in raised
        # inspection, commands and the heartbeat go on
        hb = softplc.state.get("agent.heartbeat")
        n = metric(daemon, "edge_agent_inspections_total")
        await wait_until(lambda: softplc.state.get("line1.station1.stop_request"), 40,
                         "the crack's stop at the soft PLC")
        assert metric(daemon, "edge_agent_inspections_total") > n + 10
        assert softplc.state.get("agent.heartbeat") != hb
        assert metric(daemon, "edge_agent_evidence_writer_failed_total") > 0
        assert all("evidence" not in d for d in dropped_records(tmp_path / "drop"))
        os.unlink(ballast)  # room again: stored again, the alarm clears, the cap holds
        await wait_until(lambda: any(a["event"] == "cleared" for a in alarms()), 30, "cleared")
        await wait_until(lambda: metric(daemon, "edge_agent_evidence_store_evicted_total") > 0, 30,
                         "retention evicting at max_bytes")
        used = sum(p.stat().st_size for p in tiny_disk.rglob("*") if p.is_file())
        assert used <= 200_000 + 60_000  # the cap, plus at most the item being written
        rc, _ = await asyncio.to_thread(daemon.terminate)
        assert rc == 0
    finally:
        daemon.ensure_dead()
