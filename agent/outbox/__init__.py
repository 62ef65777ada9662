"""Durable outbox: SQLite WAL store (store.py) + one forwarder task per sink (forwarder.py)."""

from agent.outbox.forwarder import Forwarder, ForwarderState, ForwarderStats
from agent.outbox.stats import SinkOutboxStats, StoreStats
from agent.outbox.store import FILE_NAME, Outbox

__all__ = ["FILE_NAME", "Forwarder", "ForwarderState", "ForwarderStats", "Outbox",
           "SinkOutboxStats", "StoreStats"]
