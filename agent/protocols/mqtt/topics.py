"""The MQTT topic tree (DESIGN.md "MES side: MQTT topics"), QoS and message expiry per kind.

    {prefix}/{site}/{line}/{station}/{kind}      defect, inspection, stop, alarm, drift
    {prefix}/{site}/agent/{agent_id}/{kind}      agent-level records (no line/station)
    {prefix}/{site}/agent/{agent_id}/status      retained; Last Will = offline
    {prefix}/{site}/agent/{agent_id}/metrics
    {prefix}/{site}/agent/{agent_id}/cmd         inbound operator commands (optional)
    {prefix}/{site}/agent/{agent_id}/cmd/result  accepted / rejected with a reason

A per-kind template in `topics` overrides the record topic; its placeholders are
{prefix} {site} {line} {station} {agent_id} {kind}. Pure: no I/O.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from agent.types import Record

PLACEHOLDERS = frozenset({"prefix", "site", "line", "station", "agent_id", "kind"})
STATION_TEMPLATE = "{prefix}/{site}/{line}/{station}/{kind}"
AGENT_TEMPLATE = "{prefix}/{site}/agent/{agent_id}/{kind}"
DEFAULT_QOS = 1
_FORBIDDEN = ("+", "#", "\0")


def template_fields(template: str) -> set[str]:
    """Placeholder names used by `template`; ValueError for a malformed one."""
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"bad topic template {template!r}: {exc}") from None
    unknown = names - PLACEHOLDERS
    if unknown or "" in names:
        raise ValueError(
            f"bad topic template {template!r}: unknown placeholder(s) "
            f"{sorted(unknown or {''})}; allowed: {sorted(PLACEHOLDERS)}")
    return names


def check_level(value: str, what: str) -> str:
    """A topic level must not hold '/', wildcards or NUL (it would change the tree)."""
    if not value or "/" in value or any(c in value for c in _FORBIDDEN):
        raise ValueError(f"{what} {value!r} cannot be used in an MQTT topic level")
    return value


@dataclass(frozen=True)
class TopicMap:
    prefix: str
    site: str
    agent_id: str
    templates: Mapping[str, str] = field(default_factory=dict)
    qos_by_kind: Mapping[str, int] = field(default_factory=dict)
    expiry_by_kind: Mapping[str, int] = field(default_factory=dict)
    command_template: str = "{prefix}/{site}/agent/{agent_id}/cmd"
    _topics: dict[tuple[str, str | None, str | None], str] = field(
        default_factory=dict, init=False, repr=False, compare=False)  # record topics made

    def __post_init__(self) -> None:
        check_level(self.site, "site")
        check_level(self.agent_id, "agent_id")
        for t in self.templates.values():
            template_fields(t)
        if {"line", "station"} & template_fields(self.command_template):
            raise ValueError(f"command topic {self.command_template!r} cannot use line/station")

    def _fill(self, template: str, kind: str, line: str | None = None,
              station: str | None = None) -> str:
        topic = template.format(prefix=self.prefix, site=self.site, agent_id=self.agent_id,
                                kind=kind, line=line, station=station)
        if not topic or any(c in topic for c in _FORBIDDEN):
            raise ValueError(f"topic {topic!r} is not a valid MQTT topic name")
        return topic

    def record_topic(self, record: Record) -> str:
        """Topic of a record: the kind's template, else station- or agent-level default."""
        key = (str(record.kind), record.line, record.station)
        topic = self._topics.get(key)
        if topic is None:
            topic = self._record_topic(*key)
            if len(self._topics) < 4096:  # a handful of lines x stations x kinds in practice
                self._topics[key] = topic
        return topic

    def station_topic(self, kind: str, line: str, station: str) -> str:
        """Topic of a station's record of `kind` (a `topics:` override applies)."""
        return self._record_topic(kind, line, station)

    def _record_topic(self, kind: str, line: str | None, station: str | None) -> str:
        scoped = line is not None and station is not None
        if scoped:
            check_level(line or "", "line")
            check_level(station or "", "station")
        template = self.templates.get(kind)
        if template and (scoped or not {"line", "station"} & template_fields(template)):
            return self._fill(template, kind, line, station)
        return self._fill(STATION_TEMPLATE if scoped else AGENT_TEMPLATE, kind, line, station)

    def agent_topic(self, kind: str) -> str:
        return self._fill(AGENT_TEMPLATE, kind)

    def record_filter(self, kind: str, line: str | None = None,
                      station: str | None = None) -> str:
        """Subscription filter for the station records of `kind` (a `topics:` override
        applies), '+' for the line and station not given (`edge-agent alerts --config`)."""
        return _subscription(self.templates.get(kind) or STATION_TEMPLATE, prefix=self.prefix,
                             site=self.site, agent_id=self.agent_id, kind=kind, line=line,
                             station=station)

    @property
    def status_topic(self) -> str:
        return self.agent_topic("status")

    @property
    def metrics_topic(self) -> str:
        return self.agent_topic("metrics")

    @property
    def command_topic(self) -> str:
        return self._fill(self.command_template, "cmd")

    @property
    def command_result_topic(self) -> str:
        return self.command_topic + "/result"

    def qos(self, kind: str) -> int:
        return int(self.qos_by_kind.get(kind, DEFAULT_QOS))

    def expiry_s(self, kind: str, created: datetime | None = None,
                 now: datetime | None = None) -> int | None:
        """MQTT 5 message expiry for a record, counted from its creation time (at least 1 s);
        None when the kind has none configured."""
        total = self.expiry_by_kind.get(kind)
        if total is None:
            return None
        if created is None or now is None:
            return int(total)
        left = total - (now - created).total_seconds()
        return max(1, math.ceil(left))


def alert_filter(prefix: str, site: str | None = None, line: str | None = None,
                 station: str | None = None, kind: str = "defect") -> str:
    """Subscription filter for the default station topics ('+' where not given)."""
    return _subscription(STATION_TEMPLATE, prefix=prefix, site=site, agent_id=None, kind=kind,
                         line=line, station=station)


def _subscription(template: str, **values: str | None) -> str:
    """`template` filled, '+' for the values not given; a level holding a '+' becomes '+'."""
    for name in ("site", "line", "station"):
        if values[name]:
            check_level(values[name] or "", "filter level")
    filled = template.format(**{k: v or "+" for k, v in values.items()})
    return "/".join("+" if "+" in level else level for level in filled.split("/"))
