"""Fail-safe when inspection is impossible: after `after_s`, alert or stop, once per episode.

The episode counts from when inspection really became impossible: the caller may date it
back (`since`), e.g. to when a frozen camera's picture stopped changing, which is found
only `frozen_after_s` later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.decision.commands import CommandIssuer, evidence
from agent.decision.records import RecordFactory
from agent.decision.state import Episode, StationState
from agent.decision.views import Counters, Decision
from agent.types import CommandKind

log = logging.getLogger(__name__)


def impossible(st: StationState, reason: str, now: float, issuer: CommandIssuer,
               records: RecordFactory, counters: Counters, new_id: Callable[[], str],
               since: float | None = None) -> Decision:
    """Inspection impossible now (and since `since`, when earlier): start or continue the
    episode; act once it lasted after_s."""
    start = now if since is None else min(now, since)
    if st.episode is None:
        st.episode = Episode(since=start, reason=reason)
        log.warning("%s/%s: inspection impossible (%s) for %.1f s; fail-safe %s in %.1f s",
                    st.line, st.station, reason, now - start, st.cfg.fail_safe.action,
                    max(0.0, st.cfg.fail_safe.after_s - (now - start)))
    ep = st.episode
    ep.reason = reason
    ep.since = min(ep.since, start)
    if ep.acted or now - ep.since < st.cfg.fail_safe.after_s:
        return Decision()
    return _act(st, ep, now, issuer, records, counters, new_id)


def _act(st: StationState, ep: Episode, now: float, issuer: CommandIssuer,
         records: RecordFactory, counters: Counters, new_id: Callable[[], str]) -> Decision:
    action = st.cfg.fail_safe.action
    ep.acted = True
    ep.event_id = new_id()
    counters.fail_safe_actions += 1
    log.error("%s/%s: inspection impossible for %.1f s (%s): fail-safe %s",
              st.line, st.station, now - ep.since, ep.reason, action)
    kind = CommandKind.STOP if action == "stop" else CommandKind.ALARM
    rule = f"fail_safe: {ep.reason} for >= {st.cfg.fail_safe.after_s:g} s -> {action}"
    ev = evidence(st.last_model, [], rule, reason=ep.reason, impossible_s=now - ep.since)
    cmd = issuer.build(st, kind, ep.event_id, now, rule=rule, ev=ev)
    record = records.alarm(st, "raised", ep.event_id, reason=ep.reason, action=action,
                           duration_s=now - ep.since)
    return Decision(records=(record,)) + issuer.issue(st, cmd, now)


def possible(st: StationState, now: float, records: RecordFactory) -> Decision:
    """Inspection possible again: the episode ends; an alarm that was raised is cleared."""
    ep, st.episode = st.episode, None
    if ep is None or not ep.acted:
        return Decision()
    log.info("%s/%s: inspection possible again after %.1f s", st.line, st.station, now - ep.since)
    record = records.alarm(st, "cleared", reason=ep.reason, duration_s=now - ep.since,
                           trigger_event_id=ep.event_id)
    return Decision(records=(record,))
