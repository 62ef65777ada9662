"""Evidence store, retention and rendering: atomic files, oldest first, pending kept, mask/copies."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config.evidence import MaskRect
from agent.event_ids import EventIds
from agent.evidence import layout
from agent.evidence.images import render
from agent.evidence.retention import Retention
from agent.evidence.store import EvidenceStore

DAY_MS = 86_400_000


def ids_at(ms: int) -> EventIds:
    return EventIds(clock_ns=lambda: ms * 1_000_000)


def put(store: EvidenceStore, eid: str, size: int = 1000, waits: tuple[str, ...] = ()) -> int:
    return store.write(eid, {"": b"\xff" * size}, {"id": eid}, waits)


def test_layout_from_the_id_alone() -> None:
    eid = ids_at(1_764_410_000_000)()  # 2025-11-29
    assert layout.rel_image(eid) == f"2025-11-29/{eid}.jpg"
    assert layout.rel_image(eid, ".crop2") == f"2025-11-29/{eid}.crop2.jpg"
    for bad in ("../etc/passwd", "1234", eid.upper(), eid[:-1] + "/"):
        with pytest.raises(layout.BadEvidenceId):
            layout.rel_image(bad)
    with pytest.raises(layout.BadEvidenceId):
        layout.rel_image(eid, "/../../x")


def test_write_is_complete_and_readable(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path)
    eid = EventIds()()
    n = store.write(eid, {"": b"A" * 10, ".crop0": b"B" * 5}, {"id": eid, "v": 1}, ("drop",))
    assert store.image_path(eid).read_bytes() == b"A" * 10
    assert store.sidecar(eid) == {"id": eid, "v": 1}
    assert list(store.ids()) == [eid] and store.waiting(eid) == ["drop"]
    assert n == sum(p.stat().st_size for p in store.files_of(eid))
    store.delivered(eid, "drop")
    assert store.waiting(eid) == []
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary file left


def test_sweep_removes_what_a_crash_left(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path)
    ok, torn = EventIds()(), EventIds()()
    put(store, ok)
    day = tmp_path / layout.day_of(torn)
    (day / f"{torn}.jpg").write_bytes(b"half")  # image written, sidecar never came
    (day / f".{torn}.crop0.jpg.tmp").write_bytes(b"x")
    assert store.sweep() == 2
    assert sorted(p.name for p in day.iterdir()) == [f"{ok}.jpg", f"{ok}.json"]


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path)
    eid = EventIds()()
    with pytest.raises(layout.BadEvidenceId):  # fails after the first image was written
        store.write(eid, {"": b"A", "/x": b"B"}, {})
    assert store.files_of(eid) == []


def test_byte_cap_evicts_oldest_first_and_keeps_pending(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path)
    now_ms = 1_764_410_000_000
    ids = ids_at(now_ms)
    ret = Retention(store, max_bytes=5000, max_age_s=1e9, min_free_bytes=0,
                    clock=lambda: now_ms / 1000, free=lambda _: 10**12)
    ret.load()
    made = []
    for i in range(8):
        eid = ids()
        made.append(eid)
        waits = ("http",) if i == 0 else ()
        ret.add(eid, put(store, eid, waits=waits), waits)
        ret.enforce()
    kept = list(store.ids())
    assert ret.stats.bytes <= 5000 and kept[-1] == made[-1]
    assert made[0] in kept  # waiting for a sink: outlived younger ones
    assert made[1] not in kept and ret.stats.evicted_pending == 0
    for _ in range(8):  # only pending items left to go: the cap forces them out, counted
        eid = ids()
        ret.add(eid, put(store, eid, size=4500, waits=("http",)), ("http",))
        ret.enforce()
    assert ret.stats.evicted_pending >= 1 and made[0] not in list(store.ids())
    assert ret.stats.bytes <= 5000


def test_age_and_free_disk(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path)
    now_ms = 1_764_410_000_000
    old, pending_old = ids_at(now_ms - 3 * DAY_MS)(), ids_at(now_ms - 3 * DAY_MS + 1)()
    new = ids_at(now_ms)()
    free = {"bytes": 10**9}
    ret = Retention(store, max_bytes=10**9, max_age_s=2 * 86400, min_free_bytes=1000,
                    clock=lambda: now_ms / 1000, free=lambda _: free["bytes"])
    put(store, old)
    put(store, pending_old, waits=("drop",))
    put(store, new)
    ret.load()
    ret.enforce()
    assert list(store.ids()) == [pending_old, new]  # too old, unless a sink still waits
    free["bytes"] = 500  # below the floor: everything goes, pending counted
    ret.enforce()
    assert list(store.ids()) == [] and ret.stats.evicted_pending == 1
    assert not ret.room_for(100)


def test_render_never_draws_on_the_frame() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    before = frame.copy()
    images, crop_of = render(frame, [("scratch", 0.9, (10.0, 20.0, 60.0, 80.0)), ("ok", 0.1, None)],
                             90, crops=True, annotate=True,
                             mask=[MaskRect(x1=0.5, y1=0.0, x2=1.0, y2=0.5)])
    assert np.array_equal(frame, before)
    assert set(images) == {"", ".crop0", ".annotated"} and crop_of == [0, None]
    full = cv2.imdecode(np.frombuffer(images[""], np.uint8), cv2.IMREAD_COLOR)
    assert full.shape == frame.shape
    assert full[:50, 90:].mean() < 3  # the masked quarter is black
    assert abs(int(full[100:, :80].mean()) - int(frame[100:, :80].mean())) < 8
    crop = cv2.imdecode(np.frombuffer(images[".crop0"], np.uint8), cv2.IMREAD_COLOR)
    assert crop.shape == (60, 50, 3)
    assert hashlib.sha256(images[""]).hexdigest() != hashlib.sha256(images[".annotated"]).hexdigest()
