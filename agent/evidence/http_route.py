"""GET /evidence/<id>.jpg (and <id>.annotated.jpg, <id>.crop<N>.jpg, <id>.json).

Registered on the health server, behind the same bearer token as /status. Reads one
file by a name built from a validated id: no path from the request reaches the file
system, and nothing the writer thread waits on is locked.
"""

from __future__ import annotations

import json

from agent.evidence import layout
from agent.evidence.store import EvidenceStore

PREFIX = "/evidence/"
MAX_SERVED = 32 * 1024 * 1024


class EvidenceRoute:
    def __init__(self, store: EvidenceStore) -> None:
        self.store = store
        self.served = 0
        self.missing = 0

    def __call__(self, path: str) -> tuple[int, bytes, str]:
        """(status, body, content type) for a path under /evidence/."""
        name = path[len(PREFIX):]
        parts = layout.split_name(name)
        if parts is None:
            return self._missing(f"{path!r} is not /evidence/<id>.jpg")
        eid, rest = parts
        try:
            if rest == layout.SIDECAR:
                target = self.store.root / layout.rel_sidecar(eid)
                ctype = "application/json"
            elif rest.endswith(".jpg"):
                target = self.store.image_path(eid, rest[:-4])
                ctype = "image/jpeg"
            else:
                return self._missing(f"{path!r}: want <id>.jpg, <id>.annotated.jpg, "
                                     "<id>.cropN.jpg or <id>.json")
            if not self.store.complete(eid):
                return self._missing(f"no evidence {eid} (never stored, or deleted by retention)")
            with open(target, "rb") as fh:
                body = fh.read(MAX_SERVED)
        except layout.BadEvidenceId as exc:
            return self._missing(str(exc))
        except OSError:
            return self._missing(f"no file {rest!r} for evidence {eid}")
        self.served += 1
        return 200, body, ctype

    def _missing(self, detail: str) -> tuple[int, bytes, str]:
        self.missing += 1
        return 404, json.dumps({"error": detail}).encode(), "application/json"
