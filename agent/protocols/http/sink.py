"""HTTP sink (MES REST): POST JSON, acknowledged by a 2xx.

Standard library only (`http.client` in a worker thread via asyncio.to_thread,
one kept-alive connection per origin: http_conn.py): one blocking POST at a time
per sink is all the outbox forwarder needs, and it keeps the dependency list short.

Batches: records are grouped by kind (in order of first appearance; order
within a kind is kept) and POSTed to that kind's URL. With `batch: true` (the
default) each group is one POST of a JSON array and `Idempotency-Key` is the
record id for a single record, else "<first id>..<last id>" (ids are UUIDv7,
time-ordered; every element also carries its own `event_id`, which the MES
should use to de-duplicate). With `batch: false` each record is its own POST of
a JSON object with `Idempotency-Key` = record id.

Outcomes: 2xx = delivered; 5xx, 408, 425, 429, timeouts, refused/reset
connections = SinkUnavailable (retried); 401/403/407 (credentials), 404/405
(wrong URL), 3xx (redirects are not followed) and TLS failures =
SinkUnavailable with the sink in FAILED, so records stay in the outbox until the
configuration is fixed; any other 4xx (400, 413, 422, ...) = SinkRejected with
the response body (dead-lettered).

Evidence (`evidence: multipart | put`, agent/protocols/file/evidence_files.py): with multipart a
record that references images is POSTed alone as multipart/form-data (the record and
its images in one request); with put each image is PUT to `evidence_url` (same
credentials, `Idempotency-Key` = file name) before the record is POSTed. Either way a
failed upload fails the send like a failed POST: the record stays in the outbox and is
retried in order, so images and records are delivered at least once and in order. An
image retention already deleted is counted (`evidence_missing`) and the record sent
without it.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NoReturn

from agent import __version__
from agent.logutil import RepeatLimiter
from agent.protocols.base import (
    SinkRejected,
    SinkState,
    SinkUnavailable,
    encode_json,
    wire_payload,
)
from agent.protocols.file import evidence_files
from agent.protocols.http.conn import HttpConnections
from agent.types import Record

if TYPE_CHECKING:
    from agent.protocols.http.config import HttpAuth, HttpSinkConfig

log = logging.getLogger(__name__)
RETRY_LATER = frozenset({408, 425, 429})
MISCONFIGURED = {401: "credentials refused", 403: "forbidden (credentials or permissions)",
                 404: "URL not found", 405: "method not allowed at this URL",
                 407: "proxy authentication required"}
BODY_LIMIT = 500


@dataclass
class HttpSinkStats:
    requests: int = 0
    records_sent: int = 0  # acknowledged by a 2xx
    rejected: int = 0  # records refused with a 4xx (dead-lettered)
    unavailable: int = 0  # sends that raised SinkUnavailable
    last_status: int | None = None
    last_error: str | None = None
    evidence_uploaded: int = 0  # image files sent (multipart parts or PUTs)
    evidence_missing: int = 0  # referenced images no longer in the store (retention)


@dataclass(frozen=True)
class _Response:
    status: int
    body: str


def auth_headers(auth: HttpAuth, where: str) -> dict[str, str]:
    if auth.bearer_token is not None and auth.username is not None:
        raise ValueError(f"{where}: set either auth.bearer_token or auth.username, not both")
    if auth.bearer_token is not None:
        return {"Authorization": f"Bearer {auth.bearer_token.get_secret_value()}"}
    if auth.username is not None:
        pw = auth.password.get_secret_value() if auth.password else ""
        token = base64.b64encode(f"{auth.username}:{pw}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}
    return {}


def idempotency_key(records: Sequence[Record]) -> str:
    return records[0].id if len(records) == 1 else f"{records[0].id}..{records[-1].id}"


def group_by_kind(batch: Sequence[Record]) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = {}
    for r in batch:
        groups.setdefault(str(r.kind), []).append(r)
    return groups


class HttpSink:
    def __init__(self, name: str, cfg: HttpSinkConfig, conns: HttpConnections,
                 auth: dict[str, str]) -> None:
        self.name = name
        self.cfg = cfg
        self.conns = conns
        self.auth = auth
        self.where = f"http sink {name!r}"
        self._state = SinkState.STARTING
        self._stats = HttpSinkStats()
        self._lim = RepeatLimiter(log, self.where)
        self._cfg_lim = RepeatLimiter(log, self.where, logging.ERROR)
        self._evidence: evidence_files.EvidenceSource | None = None

    def attach_evidence(self, store: evidence_files.EvidenceSource) -> None:
        self._evidence = store

    @property
    def takes_evidence(self) -> bool:
        return self._evidence is not None and self.cfg.evidence != "off"

    @property
    def state(self) -> SinkState:
        return self._state

    def stats(self) -> HttpSinkStats:
        return replace(self._stats)

    def url_for(self, kind: str) -> str:
        return self.cfg.urls.get(kind, self.cfg.url)

    async def start(self) -> None:
        self._state = SinkState.CONNECTED  # ready; the state follows each request's outcome

    async def close(self) -> None:
        self._state = SinkState.CLOSED
        await asyncio.to_thread(self.conns.close)  # waits for a request in flight

    async def send(self, batch: Sequence[Record]) -> None:
        if self._state is SinkState.CLOSED:
            raise SinkUnavailable(f"{self.where}: closed")
        refused: dict[str, str] = {}
        for kind, records in group_by_kind(batch).items():
            for chunk in self._chunks(records):
                reason = await self._post(self.url_for(kind), chunk)
                if reason is not None:
                    refused.update({r.id: reason for r in chunk})
        if refused:
            self._stats.rejected += len(refused)
            raise SinkRejected(next(iter(refused.values())), list(refused))

    def _chunks(self, records: list[Record]) -> list[list[Record]]:
        """Requests in order: batches as configured; with multipart evidence, a record that
        references images goes alone."""
        if not self.cfg.batch:
            return [[r] for r in records]
        if not (self.takes_evidence and self.cfg.evidence == "multipart"):
            return [records]
        out: list[list[Record]] = []
        run: list[Record] = []
        for r in records:
            if evidence_files.reference(wire_payload(r)) is None:
                run.append(r)
                continue
            if run:
                out.append(run)
                run = []
            out.append([r])
        return out + ([run] if run else [])

    async def _post(self, url: str, records: list[Record]) -> str | None:
        """POST one request (after its PUTs); None when delivered, else why the MES refused."""
        items = [wire_payload(r) for r in records]
        refs = [ref for ref in map(evidence_files.reference, items) if ref is not None] \
            if self.takes_evidence else []
        ctype = "application/json"
        try:
            if refs and self.cfg.evidence == "put":
                for ref in refs:
                    reason = await self._put_files(ref)
                    if reason is not None:
                        return reason
            if refs and self.cfg.evidence == "multipart" and len(items) == 1:
                files = await asyncio.to_thread(self._read_files, refs[0])
                body, ctype = evidence_files.multipart(items[0], files)
                self._stats.evidence_uploaded += len(files)
            else:
                body = encode_json(items if self.cfg.batch else items[0])
        except ValueError as exc:
            return f"{self.where}: {exc}"
        headers = {"Content-Type": ctype, "Accept": "application/json",
                   "User-Agent": f"edge-agent/{__version__}",
                   "Idempotency-Key": idempotency_key(records), **self.auth}
        reason = await self._send("POST", url, body, headers)
        if reason is None:
            self._delivered(len(records))
            for ref in refs:
                if self._evidence is not None:
                    self._evidence.delivered(ref["id"], self.name)
        return reason

    async def _put_files(self, ref: dict[str, object]) -> str | None:
        assert self.cfg.evidence_url is not None
        for f, data in await asyncio.to_thread(self._read_files, ref):
            url = self.cfg.evidence_url.format(id=ref["id"], name=f.name)
            headers = {"Content-Type": "image/jpeg", "User-Agent": f"edge-agent/{__version__}",
                       "Idempotency-Key": f.name, **self.auth}
            reason = await self._send("PUT", url, data, headers)
            if reason is not None:
                return reason
            self._stats.evidence_uploaded += 1
        return None

    def _read_files(self, ref: dict[str, object]) -> list[tuple[evidence_files.EvidenceFile, bytes]]:
        """(file, bytes) of each image still stored (worker thread)."""
        out: list[tuple[evidence_files.EvidenceFile, bytes]] = []
        if self._evidence is None:
            return out
        for f in evidence_files.files_of(self._evidence, ref):
            try:
                out.append((f, f.path.read_bytes()))
            except FileNotFoundError:
                self._stats.evidence_missing += 1
                log.warning("%s: evidence %s no longer stored (retention); sent without it",
                            self.where, f.name)
        return out

    async def _send(self, method: str, url: str, body: bytes,
                    headers: dict[str, str]) -> str | None:
        """One request; None on a 2xx, the reason for a refusal; raises SinkUnavailable."""
        self._stats.requests += 1
        try:
            resp = await asyncio.to_thread(self._request, method, url, body, headers)
        except _Unavailable as exc:
            self._unavailable(str(exc), exc.for_good)
        self._stats.last_status = resp.status
        if 200 <= resp.status < 300:
            return None
        return self._classify(f"{method} {url}", resp)

    def _classify(self, what: str, resp: _Response) -> str:
        status, body = resp.status, resp.body[:BODY_LIMIT]
        if status >= 500 or status in RETRY_LATER:
            self._unavailable(f"{what} -> HTTP {status}: {body}", False)
        if status in MISCONFIGURED or 300 <= status < 400:
            why = MISCONFIGURED.get(status, "redirect not followed: set the final URL")
            self._unavailable(f"{what} -> HTTP {status} {why}: {body}", True)
        self._state = SinkState.CONNECTED
        log.warning("%s: %s refused with HTTP %d: %s", self.where, what, status, body)
        return f"{self.where}: {what} -> HTTP {status}: {body}"

    def _delivered(self, n: int) -> None:
        self._stats.records_sent += n
        self._stats.last_error = None
        self._state = SinkState.CONNECTED
        self._lim.recovered("delivering again")
        self._cfg_lim.recovered("delivering again")

    def _unavailable(self, why: str, for_good: bool) -> NoReturn:
        self._stats.unavailable += 1
        self._stats.last_error = why
        if for_good:
            self._state = SinkState.FAILED
            self._cfg_lim.failure("%s; records stay in the outbox", why)
        else:
            self._state = SinkState.DISCONNECTED
            self._lim.failure("%s; records stay in the outbox", why)
        raise SinkUnavailable(f"{self.where}: {why}")

    def _request(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> _Response:
        """Blocking request (worker thread). Raises _Unavailable for transport failures."""
        try:
            status, data = self.conns.post(url, body, headers, method)
        except (OSError, http.client.HTTPException) as exc:
            raise _transport_error(f"{method} {url}", exc) from None
        return _Response(status, data[:4096].decode("utf-8", "replace"))


class _Unavailable(Exception):
    def __init__(self, msg: str, for_good: bool) -> None:
        super().__init__(msg)
        self.for_good = for_good


def _transport_error(what: str, reason: object) -> _Unavailable:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return _Unavailable(f"{what}: TLS certificate verification failed: "
                            f"{reason.verify_message or reason}", True)
    if isinstance(reason, ssl.SSLError):
        return _Unavailable(f"{what}: TLS handshake failed: {reason.reason or reason}", True)
    if isinstance(reason, TimeoutError):
        return _Unavailable(f"{what}: timed out", False)
    if isinstance(reason, ConnectionRefusedError):
        return _Unavailable(f"{what}: connection refused", False)
    return _Unavailable(f"{what}: {reason}", False)

