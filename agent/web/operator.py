"""The console's optional operator action: reset a latched stop.

Off unless `console.operator_reset`; needs the separate operator credential, the
session's CSRF token and a same-origin request. Every attempt is audited as an
`operator_command` line with the same fields as one taken over MQTT (sink "console"),
and an accepted one goes to the same handler the MQTT command path calls
(`Agent.on_operator_command`), so the reset itself is audited exactly like
`edge-agent reset`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from agent.health.routes import Request
from agent.protocols.mqtt.commands import OperatorAction, OperatorCommand, Outcome
from agent.types import new_event_id
from agent.web.auth import SessionAuth


class OperatorReset:
    def __init__(self, operator_token: str, auth: SessionAuth, stations: Callable[[], list[str]],
                 handler: Callable[[OperatorCommand], None], audit: Callable[..., None]) -> None:
        self._token = operator_token.encode()
        self._auth, self._stations = auth, stations
        self._handler, self._audit = handler, audit
        self.accepted = 0
        self.rejected: dict[str, int] = {}

    def __call__(self, req: Request) -> tuple[int, dict[str, Any]]:
        form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace"),
                                             max_num_fields=8).items()}
        key = form.get("station", "")
        line, _, station = key.partition("/")
        client = req.client
        now = datetime.now(UTC)
        cmd = OperatorCommand(OperatorAction.RESET, line or None, station or None,
                              new_event_id(), client, now, now)
        why = self._refusal(req, form, key)
        if why is not None:
            code, reason = why
            out = Outcome(False, reason, None, cmd.id, code, client, "reset", code != "unauthenticated")
            self._audit("operator_command", sink="console", **out.audit_fields())
            self.rejected[code] = self.rejected.get(code, 0) + 1
            return (403 if code in ("unauthenticated", "csrf") else 400), out.reply()
        out = Outcome(True, "accepted", cmd, cmd.id, "accepted", client, "reset", True)
        self._audit("operator_command", sink="console", **out.audit_fields())
        self.accepted += 1
        self._handler(cmd)
        return 200, out.reply()

    def _refusal(self, req: Request, form: dict[str, str], key: str) -> tuple[str, str] | None:
        origin = req.headers.get("origin")
        host = req.headers.get("host", "")
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            return "csrf", f"cross-origin request from {origin!r}"
        if not self._auth.csrf_ok(req.headers, form.get("csrf", "")):
            return "csrf", "missing or wrong CSRF token (reload the page)"
        if not hmac.compare_digest(form.get("operator_token", "").encode(), self._token):
            return "unauthenticated", "wrong operator credential"
        if key not in self._stations():
            return "invalid", f"no station {key!r}"
        return None
