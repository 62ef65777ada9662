"""The defects page's data: the newest incidents' evidence, filtered, with PLC outcomes.

Reads the evidence store (agent/evidence: `<id>.json` sidecars beside the JPEGs, served
under /evidence/) off the event loop: a request returns the index as last refreshed and,
if that is older than REFRESH_S, asks one worker thread to refresh it (only sidecars not
seen before are read; ids gone by retention are dropped). The PLC outcome of an
incident's command comes from the outcomes this process saw (`Outcomes`, bounded).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

from agent.types import CommandOutcome

REFRESH_S = 1.0
MAX_INDEX = 20000
FILTERS = {"station": "key", "class": "class", "verdict": "verdict"}


class Outcomes:
    """Command outcomes by event id (the incident's), the newest `size` kept."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._by_event: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    def add(self, o: CommandOutcome) -> None:
        c = o.command
        row = {"kind": c.kind.value, "plc": c.plc, "status": o.status.value,
               "attempts": o.attempts, "error": o.error,
               "latency_ms": None if o.latency_ms is None else round(o.latency_ms, 2)}
        self._by_event.setdefault(c.event_id, []).append(row)
        self._by_event.move_to_end(c.event_id)
        while len(self._by_event) > self.size:
            self._by_event.popitem(last=False)

    def of(self, event_id: str | None) -> list[dict[str, Any]] | None:
        return None if event_id is None else self._by_event.get(event_id)


def _summary(eid: str, meta: dict[str, Any]) -> dict[str, Any]:
    key = f"{meta.get('line')}/{meta.get('station')}"
    return {"id": eid, "key": key, "station": key, "class": meta.get("defect_class"),
            "verdict": meta.get("verdict") or meta.get("role") or "-",
            "code": meta.get("defect_code"), "time": meta.get("capture_time"),
            "event_id": meta.get("defect_event_id"),
            "thumb": f"/evidence/{eid}.annotated.jpg"}


class DefectIndex:
    def __init__(self, store: Any, outcomes: Outcomes) -> None:
        self.store, self.outcomes = store, outcomes
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()  # oldest first
        self._refreshed = 0.0
        self._busy = False
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="console-defects")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def refresh(self) -> None:
        """Read new sidecars, drop gone ones (worker thread; tests call it directly)."""
        try:
            ids = list(self.store.ids())[-MAX_INDEX:]
            known = set(ids)
            fresh: OrderedDict[str, dict[str, Any]] = OrderedDict()
            for eid in ids:
                old = self._items.get(eid)
                if old is not None:
                    fresh[eid] = old
                    continue
                meta = self.store.sidecar(eid)
                if meta is not None and eid in known:
                    fresh[eid] = _summary(eid, meta)
            with self._lock:
                self._items = fresh
        finally:
            self._refreshed = time.monotonic()
            self._busy = False

    def _maybe_refresh(self) -> None:
        if not self._busy and time.monotonic() - self._refreshed >= REFRESH_S:
            self._busy = True
            self._pool.submit(self.refresh)

    def query(self, query: str, limit: int) -> dict[str, Any]:
        """The newest `limit` items matching ?station=&class=&verdict= (event loop)."""
        self._maybe_refresh()
        q = {k: v[0] for k, v in parse_qs(query, max_num_fields=8).items()}
        limit = min(limit, int(q["limit"])) if q.get("limit", "").isdigit() else limit
        with self._lock:
            items = list(self._items.values())
        choices = {f: sorted({str(i[k]) for i in items if i.get(k)}) for f, k in FILTERS.items()}
        picked = [i for i in reversed(items)
                  if all(not q.get(f) or str(i.get(k)) == q[f] for f, k in FILTERS.items())]
        return {"total": len(picked), "items": picked[:limit], "choices": choices,
                "indexed": len(items)}

    def detail(self, eid: str) -> dict[str, Any] | None:
        with self._lock:
            item = self._items.get(eid)
        if item is None:
            return None
        meta = self.store.sidecar(eid) or {}  # one small file, as /evidence/<id>.json does
        plc = self.outcomes.of(item.get("event_id"))
        return {**item, "image": f"/evidence/{eid}.annotated.jpg", "sidecar": meta,
                "plc": plc if plc is not None else
                ("no PLC command for this incident (an alert-only rule, a station "
                        "without a PLC, or sent before this daemon started)")}
