"""A refused PUBACK: "not authorized" refuses that record for good (dead-lettered, the rest of
the batch sent again); "quota exceeded" keeps the batch in the outbox (sent again later)."""

from __future__ import annotations

import asyncio

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from agent.protocols.base import SinkRejected, SinkUnavailable
from agent.protocols.mqtt.acks import BatchAcks
from agent.protocols.mqtt.session import refused_by_broker


def _rc(code: int) -> ReasonCode:
    return ReasonCode(PacketTypes.PUBACK, identifier=code)


async def _settled(reasons: dict[str, int]) -> BatchAcks:
    acks = BatchAcks(asyncio.get_running_loop().create_future())
    for _ in reasons:
        acks.add()
    for rid, code in reasons.items():
        acks.settle(rid, _rc(code))
    await acks.future
    return acks


async def test_quota_exceeded_keeps_the_batch_for_later() -> None:
    acks = await _settled({"r1": 0x00, "r2": 0x97})
    assert acks.acked == 1 and acks.refused == {} and list(acks.busy) == ["r2"]
    with pytest.raises(SinkUnavailable, match="1 record\\(s\\) not taken now, first r2"):
        refused_by_broker("mqtt sink 'mes'", acks.refused, acks.busy)


async def test_not_authorized_refuses_that_record_only() -> None:
    acks = await _settled({"r1": 0x87, "r2": 0x97, "r3": 0x00})
    with pytest.raises(SinkRejected) as err:
        refused_by_broker("mqtt sink 'mes'", acks.refused, acks.busy)
    assert err.value.record_ids == ("r1",)  # r2 (quota) and r3 stay for the next send


async def test_all_acked_is_silent() -> None:
    acks = await _settled({"r1": 0x00, "r2": 0x10})  # 0x10: no matching subscribers
    refused_by_broker("mqtt sink 'mes'", acks.refused, acks.busy)
    assert acks.acked == 2
