"""The PUBACKs one MQTT send waits for, settled on the event loop by paho's callbacks."""

from __future__ import annotations

import asyncio

from paho.mqtt.reasoncodes import ReasonCode

# PUBACK reason codes that say "not now" (MQTT 5): the record stays in the outbox and is sent
# again; every other failure (not authorized, topic invalid...) refuses that record for good
RETRY_PUBACK = {0x97: "quota exceeded", 0x83: "implementation specific error"}


class BatchAcks:
    """The PUBACKs one send waits for: one future for the whole batch, settled by the last."""

    __slots__ = ("future", "waiting", "refused", "busy", "acked")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.waiting = 0
        self.refused: dict[str, str] = {}  # record id -> the broker's reason
        self.busy: dict[str, str] = {}  # record id -> the broker's "not now" (RETRY_PUBACK)
        self.acked = 0

    def add(self) -> None:
        self.waiting += 1

    def settle(self, record_id: str, reason: ReasonCode) -> None:
        if reason.is_failure:
            why = f"broker refused: {reason} (0x{int(reason.value):02X})"
            (self.busy if int(reason.value) in RETRY_PUBACK else self.refused)[record_id] = why
        else:
            self.acked += 1
        self.waiting -= 1
        if self.waiting == 0 and not self.future.done():
            self.future.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)
