"""Values <-> Modbus registers: word order, ranges, refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.protocols.modbus.address import parse_modbus_address
from agent.protocols.modbus.codec import CodecError, check_value, decode, encode, register_runs


def test_word_order_of_32_bit_values() -> None:
    a = parse_modbus_address("hr:12:u32")
    assert encode(a, 0x12345678, "big") == [0x1234, 0x5678]
    assert encode(a, 0x12345678, "little") == [0x5678, 0x1234]
    assert decode(a, [0x5678, 0x1234], "little") == 0x12345678


def test_signed_and_float() -> None:
    assert encode(parse_modbus_address("hr:1:i16"), -2, "big") == [0xFFFE]
    assert decode(parse_modbus_address("hr:1:i32"), [0xFFFF, 0xFFFE], "big") == -2
    assert encode(parse_modbus_address("hr:1:f32"), 1.5, "big") == [0x3FC0, 0x0000]


@pytest.mark.parametrize(("address", "value"), [
    ("hr:0", 65536), ("hr:0", -1), ("hr:0:i16", 40000), ("hr:0:u32", 1 << 32),
    ("hr:0", 1.5), ("hr:0", True), ("coil:0", 2), ("hr:0:f32", float("nan")),
])
def test_values_that_do_not_fit_are_refused(address: str, value: float) -> None:
    with pytest.raises(CodecError, match=address.split(":")[0]):
        check_value(parse_modbus_address(address), value)


def test_width_mismatch_refused() -> None:
    with pytest.raises(CodecError, match="expected 2"):
        decode(parse_modbus_address("hr:0:u32"), [1], "big")


@given(st.sampled_from(["u16", "i16", "u32", "i32"]), st.sampled_from(["big", "little"]),
       st.integers(-(1 << 31), (1 << 32) - 1))
def test_round_trip(dtype: str, order: str, value: int) -> None:
    addr = parse_modbus_address(f"hr:100:{dtype}")
    try:
        check_value(addr, value)
    except CodecError:
        return
    words = encode(addr, value, order)  # type: ignore[arg-type]
    assert all(0 <= w <= 0xFFFF for w in words) and len(words) == addr.width
    assert decode(addr, words, order) == value  # type: ignore[arg-type]


def test_registers_back_to_back_make_one_run_in_order() -> None:
    items = [(parse_modbus_address(a), v) for a, v in
             (("hr:10", 301), ("hr:11", 2), ("hr:12:u32", 0x10002), ("hr:20", 7), ("coil:1", True))]
    runs = register_runs(items, "big")
    assert [(r.start, r.words) for r in runs[:2]] == [(10, [301, 2, 1, 2]), (20, [7])]
    assert runs[0].label == "hr:10..13" and len(runs[0].addresses) == 3
    assert [str(a) for a in runs[2].addresses] == ["coil:1"] and runs[2].words == []
    gap = register_runs([(parse_modbus_address("hr:10"), 1), (parse_modbus_address("hr:12"), 2)], "big")
    assert len(gap) == 2  # a gap: two requests, never a write to hr:11
    with pytest.raises(CodecError, match="hr:11"):
        register_runs([(parse_modbus_address("hr:11"), 70000)], "big")
