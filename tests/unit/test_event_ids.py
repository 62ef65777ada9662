"""UUIDv7 event ids: format, uniqueness and order (also across threads and within one
millisecond), and an embedded time that stays on the clock through a burst."""

from __future__ import annotations

import threading
import time
import uuid

from agent.event_ids import EventIds
from agent.types import new_event_id


def ms_of(event_id: str) -> int:
    return uuid.UUID(event_id).int >> 80


def test_ids_are_rfc9562_v7_and_carry_the_time() -> None:
    before = time.time_ns() // 1_000_000
    made = new_event_id()
    after = time.time_ns() // 1_000_000
    u = uuid.UUID(made)
    assert u.version == 7 and u.variant == uuid.RFC_4122
    assert before <= u.int >> 80 <= after
    assert made == str(u)  # canonical form: lower-case hex, 8-4-4-4-12


def test_a_burst_is_unique_strictly_increasing_and_keeps_the_clock() -> None:
    ids = EventIds()
    burst = [ids() for _ in range(100_000)]
    assert len(set(burst)) == len(burst) and burst == sorted(burst)
    # uuid6.uuid7 (the previous source) borrowed a millisecond per id made in the same
    # one: after this burst its embedded time ran seconds ahead of the clock
    assert ms_of(burst[-1]) - time.time_ns() // 1_000_000 <= 2


def test_same_millisecond_counts_up_and_borrows_only_after_4096() -> None:
    frozen = 1_780_000_000_000 * 1_000_000
    ids = EventIds(clock_ns=lambda: frozen)
    made = [ids() for _ in range(5000)]
    assert made == sorted(made) and len(set(made)) == 5000
    stamps = {ms_of(i) for i in made}
    assert min(stamps) == frozen // 1_000_000 and len(stamps) <= 3  # a counter start < 2048


def test_clock_stepping_back_keeps_ids_increasing() -> None:
    now = [1_780_000_000_500 * 1_000_000]
    ids = EventIds(clock_ns=lambda: now[0])
    first = ids()
    now[0] -= 400 * 1_000_000  # NTP step back
    second = ids()
    assert second > first and ms_of(second) == ms_of(first)


def test_threads_share_one_generator_without_duplicates() -> None:
    ids = EventIds()
    out: list[list[str]] = [[] for _ in range(4)]

    def make(k: int) -> None:
        out[k].extend(ids() for _ in range(20_000))
    threads = [threading.Thread(target=make, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for part in out for i in part]
    assert len(set(every)) == 80_000
    assert all(part == sorted(part) for part in out)  # each thread's own ids in order
