"""Outbox losses made loud: every `Loss` the outbox reports becomes an audit line and, once
the outbox can store again, an agent-level alarm record to every sink; the store's state
is exported as metrics. (The outbox logs each loss itself.)

The records lost are counted per sink in `edge_agent_outbox_lost_total` (persisted in
the store); this module adds the store-level figures: whether the disk is full or the
file not open, and how many records were found missing or quarantined at start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agent.decision.records import RecordFactory
from agent.health.metrics import GaugeSample
from agent.outbox.store import Outbox
from agent.outbox.watermark import Loss
from agent.types import Record, new_event_id, utc_now

log = logging.getLogger(__name__)


class Audit(Protocol):
    """What this module needs of the audit writer."""

    def write(self, event: str, **fields: Any) -> Any: ...


@dataclass
class OutboxAlarms:
    outbox: Outbox
    audit: Audit
    submit: Callable[[Record], None]  # the record router
    site: str
    agent_id: str
    alarms: int = 0

    def start(self) -> None:
        """Listen (on the running loop); losses found at open are reported now."""
        self.outbox.set_loss_listener(self.on_loss)

    def on_loss(self, loss: Loss) -> None:
        known = bool(loss.lost) or loss.cause != "quarantined"
        self.audit.write("outbox_loss", cause=loss.cause, lost=loss.total if known else None,
                         lost_by_sink=loss.lost, ongoing=loss.ongoing, detail=loss.detail,
                         path=loss.path)
        if loss.ongoing:  # the record could not be stored either: it follows when it can
            return
        records = RecordFactory(self.site, self.agent_id, new_event_id, utc_now)
        self.submit(records.outbox_loss(loss.cause, loss.lost, known, loss.detail, loss.path))
        self.alarms += 1

    def samples(self) -> list[GaugeSample]:
        st = self.outbox.store_stats()
        return [
            GaugeSample("edge_agent_outbox_disk_full", {}, float(st.disk_full),
                        "1 while the outbox cannot write (full disk): records are lost"),
            GaugeSample("edge_agent_outbox_open", {}, float(st.opened),
                        "0 while the outbox file could not be opened (full disk at start)"),
            GaugeSample("edge_agent_outbox_lost_at_start", {}, float(st.lost_at_start),
                        "committed records found missing (damaged WAL) or quarantined at "
                        "this start"),
            GaugeSample("edge_agent_outbox_quarantined", {}, float(st.moved_aside is not None),
                        "1 when the outbox file was corrupt and moved aside at this start"),
            GaugeSample("edge_agent_outbox_loss_alarms_total", {}, float(self.alarms),
                        "outbox-loss alarm records raised since start", "counter"),
        ]
