"""The outbox's JSON encoder (made once) writes exactly what json.dumps with the same
settings writes: the stored JSON is sent as is, so a byte of difference would reach the MES."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.outbox.codec import to_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30)


def reference(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


@given(json_values)
def test_same_text_as_json_dumps(value: Any) -> None:
    assert to_json(value) == reference(value)


def test_unknown_types_go_through_str_like_json_dumps_default_str() -> None:
    value = {"t": datetime(2026, 11, 27, 12, 0, tzinfo=UTC), "b": b"raw", "n": None}
    assert to_json(value) == reference(value)


def test_a_cycle_raises_instead_of_hanging() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises((RecursionError, ValueError)):
        to_json(loop)
