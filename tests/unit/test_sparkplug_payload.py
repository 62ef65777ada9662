"""Sparkplug B payloads on the wire: the specification's field numbers, checked on the raw
bytes (not with our own generated module), and the edge node session's rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import agent.config  # noqa: F401  (import before any plugin module: circular import)
from agent.protocols.sparkplug.config import SparkplugSinkConfig
from agent.protocols.sparkplug.node import EdgeNodeSession
from agent.protocols.sparkplug.payload import bdseq_payload
from agent.protocols.sparkplug.sparkplug_b_pb2 import Payload
from tests.support.mqtt_peer import defect_record


def fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) of a protobuf message, decoded by hand."""
    out: list[tuple[int, int, bytes | int]] = []
    i = 0

    def varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            b = data[i]
            i += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    while i < len(data):
        key = varint()
        num, wt = key >> 3, key & 7
        if wt == 0:
            out.append((num, wt, varint()))
        elif wt == 2:
            n = varint()
            out.append((num, wt, data[i:i + n]))
            i += n
        elif wt == 1:
            out.append((num, wt, data[i:i + 8]))
            i += 8
        else:
            raise AssertionError(f"unexpected wire type {wt}")
    return out


def test_ndeath_payload_uses_the_specification_field_numbers() -> None:
    top = fields(bdseq_payload(7))
    assert [f[0] for f in top] == [1, 2]  # Payload.timestamp = 1, Payload.metrics = 2
    metric = dict((n, v) for n, _, v in fields(top[1][2]))  # type: ignore[arg-type]
    # Metric.name = 1, timestamp = 3, datatype = 4 (UInt64 = 8), long_value = 11
    assert metric[1] == b"bdSeq" and metric[4] == 8 and metric[11] == 7 and 3 in metric


def test_data_messages_carry_alias_not_name_and_seq_wraps() -> None:
    s = EdgeNodeSession()
    s.devices["L1:S1"] = {}
    s.define_device("L1:S1")
    assert Payload.FromString(s.nbirth(3)).seq == 0
    seqs = [Payload.FromString(s.dbirth("L1:S1")).seq]
    for _ in range(300):
        data = s.event(defect_record(), defect_record().payload, "L1:S1")
        top = fields(data)
        assert (3, 0, seqs[-1] + 1 if seqs[-1] < 255 else 0) in top  # Payload.seq = 3
        first_metric = dict((n, v) for n, _, v in fields(top[1][2]))  # type: ignore[arg-type]
        assert 2 in first_metric and 1 not in first_metric  # alias = 2, no name
        seqs.append(Payload.FromString(data).seq)
    assert seqs[:3] == [1, 2, 3] and seqs[254:258] == [255, 0, 1, 2]


def test_negative_int32_is_twos_complement_and_datetime_is_ms() -> None:
    s = EdgeNodeSession()
    s.devices["d"] = {"last_defect_code": -2}
    birth = Payload.FromString(s.dbirth("d"))
    code = next(m for m in birth.metrics if m.name == "Last Defect/Code")
    assert code.int_value == 2**32 - 2
    event = Payload.FromString(s.event(defect_record(), {"time": "2026-11-29T12:00:00+00:00"}, "d"))
    names = {d.alias: d.name for d in s.aliases.scope("d")}
    t = next(m for m in event.metrics if names[m.alias] == "Events/Defect/time")
    assert t.long_value == int(datetime(2026, 11, 29, 12, tzinfo=UTC).timestamp() * 1000)


def test_rebirth_request_by_name_or_alias() -> None:
    s = EdgeNodeSession()
    by_name = Payload()
    by_name.metrics.add(name="Node Control/Rebirth", boolean_value=True)
    by_alias = Payload()
    by_alias.metrics.add(alias=s.rebirth.alias, boolean_value=True)
    off = Payload()
    off.metrics.add(name="Node Control/Rebirth", boolean_value=False)
    assert s.is_rebirth_request(by_name.SerializeToString())
    assert s.is_rebirth_request(by_alias.SerializeToString())
    assert not s.is_rebirth_request(off.SerializeToString())


@pytest.mark.parametrize("bad", [{"group_id": "a/b"}, {"group_id": "x", "edge_node_id": "#"},
                                 {"group_id": "x", "primary_host_id": "h+"}])
def test_sparkplug_ids_must_be_one_topic_level(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="String should match pattern"):
        SparkplugSinkConfig.model_validate({"type": "sparkplug", "host": "h", **bad})
