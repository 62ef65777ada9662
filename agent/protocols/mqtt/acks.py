"""The PUBACKs one MQTT send waits for, settled on the event loop by paho's callbacks."""

from __future__ import annotations

import asyncio

from paho.mqtt.reasoncodes import ReasonCode


class BatchAcks:
    """The PUBACKs one send waits for: one future for the whole batch, settled by the last."""

    __slots__ = ("future", "waiting", "refused", "acked")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.waiting = 0
        self.refused: dict[str, str] = {}  # record id -> the broker's reason
        self.acked = 0

    def add(self) -> None:
        self.waiting += 1

    def settle(self, record_id: str, reason: ReasonCode) -> None:
        if reason.is_failure:
            self.refused[record_id] = f"broker refused: {reason} (0x{int(reason.value):02X})"
        else:
            self.acked += 1
        self.waiting -= 1
        if self.waiting == 0 and not self.future.done():
            self.future.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)
