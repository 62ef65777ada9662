"""The web console: routes on the health server (or its own listener), live encoder, metrics.

    /console/login        login form (public); POST sets the session cookie (auth.py)
    /console/logout       POST clears it
    /console/             line page: one card per station, cameras, PLCs, sinks
    /console/station/L/S  station detail: latency histograms (from /metrics), rules, drift
    /console/defects      the last incidents' evidence (see defects.py)
    /console/static/*     CSS and JS (public: no data in them)
    /console/api/line, /console/api/station/L/S   JSON behind the pages
    /console/live/L/S.jpg the station's newest annotated frame (live.py)
    /console/api/reset    POST, only with console.operator_reset (operator.py)

Every path but the login page and the assets needs the health token (bearer header)
or a console session; pages send a browser without one to the login page (303),
everything else answers 401.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from agent.config.console import ConsoleConfig
from agent.health.routes import Request, Response, Route, error_response, json_response
from agent.web import state
from agent.web.auth import SessionAuth
from agent.web.defects import DefectIndex
from agent.web.live import LiveEncoder, viewer_id
from agent.web.operator import OperatorReset
from agent.web.pages import HTML, Pages

if TYPE_CHECKING:
    from agent.health.server import HealthServer
    from agent.web.daemon import Daemon

P = "/console/"
LOGIN = "/console/login"


class Console:
    def __init__(self, agent: Daemon, cfg: ConsoleConfig, token: str | None) -> None:
        self.agent, self.cfg = agent, cfg
        self.auth = SessionAuth(token, cfg.session_hours)
        self.pages = Pages()
        self.live = LiveEncoder(agent.tap, cfg.live_fps, cfg.jpeg_quality, self._station_info)
        self.reset: OperatorReset | None = None
        if cfg.operator_reset and cfg.operator_token:
            self.reset = OperatorReset(
                cfg.operator_token, self.auth, lambda: list(agent.stations),
                lambda cmd: agent.on_operator_command(cmd, via="console"), agent.audit.write)
        evidence = agent.evidence  # None: evidence off
        self.defects = (DefectIndex(evidence.store, agent.tap.outcomes)
                        if evidence is not None else None)

    # ------------------------------------------------------------ wiring
    def attach(self, server: HealthServer) -> None:
        server.add_authorizer(self.auth.authorized)
        for route in (
            Route(LOGIN, self._login, ("GET", "HEAD", "POST"), public=True),
            Route("/console/logout", self._logout, ("POST",), public=True),
            Route("/console/static/", self._static, public=True),
            Route("/console/station/", self._station_page, login=LOGIN),
            Route("/console/defects", self._defects_page, login=LOGIN),
            Route("/console/api/line", self._api_line),
            Route("/console/api/station/", self._api_station),
            Route("/console/live/", self._live_image),
            Route("/console/api/reset", self._reset, ("POST",)),
            Route("/console/api/defects", self._api_defects),
            Route("/console/api/defects/", self._api_defect),
            Route("/console/api/", self._unknown),  # other data paths: 401, else 404
            Route("/console", self._line_page, login=LOGIN),
            Route(P, self._line_page, login=LOGIN),  # last: it matches every /console/... path
        ):
            server.add_route(route)

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self.live.stop()
        if self.defects is not None:
            self.defects.close()

    def _station_info(self, key: str) -> tuple[dict[str, float], Any]:
        rt = self.agent.stations.get(key)
        if rt is None:
            return {}, []
        rules = rt.cfg.rules
        return ({r.defect_class: r.min_score for r in rules},
                [r.roi for r in rules if r.roi is not None])

    # ------------------------------------------------------------ login
    def _login(self, req: Request) -> Response:
        if req.method != "POST":
            return Response(200, self.pages.render("login.html", error=""), HTML)
        form = parse_qs(req.body.decode("utf-8", "replace"), max_num_fields=4)
        token = (form.get("token") or [""])[0]
        if not self.auth.check_token(token):
            body = self.pages.render("login.html", error="Wrong token.")
            return Response(401, body, HTML)
        return Response(303, b"", "text/plain",
                        (("Location", P), ("Set-Cookie", self.auth.new_cookie())))

    def _logout(self, req: Request) -> Response:
        return Response(303, b"", "text/plain",
                        (("Location", LOGIN), ("Set-Cookie", self.auth.clear_cookie())))

    def _static(self, req: Request) -> Response:
        found = self.pages.asset(req.path.rsplit("/", 1)[-1])
        if found is None:
            return error_response(404, f"no asset {req.path!r}")
        return Response(200, found[0], found[1])

    # ------------------------------------------------------------ pages
    def _common(self, req: Request) -> dict[str, object]:
        return {"agent_id": self.agent.cfg.agent_id, "site": self.agent.cfg.site,
                "fps": self.cfg.live_fps, "csrf": self.auth.csrf(self.auth.session(req.headers)),
                "reset": "on" if self.reset is not None else "off"}

    def _line_page(self, req: Request) -> Response:
        if req.path not in (P, "/console"):
            return error_response(404, f"unknown console page {req.path!r}")
        return Response(200, self.pages.render("line.html", **self._common(req)), HTML)

    def _station_page(self, req: Request) -> Response:
        key = self._key(req.path, "/console/station/")
        if key is None:
            return error_response(404, f"no station at {req.path!r}")
        body = self.pages.render("station.html", key=key, **self._common(req))
        return Response(200, body, HTML)

    def _defects_page(self, req: Request) -> Response:
        body = self.pages.render("defects.html", shown=self.cfg.defects_shown,
                                 **self._common(req))
        return Response(200, body, HTML)

    # ------------------------------------------------------------ data
    def _key(self, path: str, prefix: str, suffix: str = "") -> str | None:
        rest = unquote(path[len(prefix):])
        if suffix:
            if not rest.endswith(suffix):
                return None
            rest = rest[: -len(suffix)]
        return rest if rest in self.agent.stations else None

    def _api_line(self, req: Request) -> Response:
        return json_response(200, state.line_state(self.agent, self.live))

    def _api_station(self, req: Request) -> Response:
        key = self._key(req.path, "/console/api/station/")
        if key is None:
            return error_response(404, f"no station at {req.path!r}")
        return json_response(200, state.station_detail(self.agent, key, self.live))

    def _live_image(self, req: Request) -> Response:
        key = self._key(req.path, "/console/live/", ".jpg")
        if key is None:
            return error_response(404, f"no station at {req.path!r}")
        snap = self.live.request(key, viewer_id(req.query, req.client))
        if snap is None:
            return error_response(503, "no image yet: the encoder starts when a viewer "
                                       "watches", (("Retry-After", "1"),))
        return Response(200, snap.jpeg, "image/jpeg",
                        (("X-Frame-Seq", str(snap.seq)), ("X-Verdict", snap.banner)))

    def _api_defects(self, req: Request) -> Response:
        if self.defects is None:
            return json_response(200, {"total": 0, "items": [], "choices": {}, "indexed": 0,
                                       "off": "evidence is off (evidence.enabled)"})
        return json_response(200, self.defects.query(req.query, self.cfg.defects_shown))

    def _api_defect(self, req: Request) -> Response:
        eid = req.path.rsplit("/", 1)[-1]
        found = self.defects.detail(eid) if self.defects is not None else None
        if found is None:
            return error_response(404, f"no evidence {eid!r} (deleted by retention?)")
        return json_response(200, found)

    def _unknown(self, req: Request) -> Response:
        return error_response(404, f"unknown console path {req.path!r}")

    def _reset(self, req: Request) -> Response:
        if self.reset is None:
            return error_response(403, "the console's operator reset is off "
                                       "(console.operator_reset)")
        code, body = self.reset(req)
        return Response(code, json.dumps(body).encode(), "application/json")
