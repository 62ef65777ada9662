"""wire_bytes: the stored JSON spliced with `replayed` is the same object encode_json makes."""

from __future__ import annotations

import json
import math

import pytest

from agent.outbox.codec import Encoded, decode, encode
from agent.protocols.base import encode_json, wire_bytes, wire_payload
from agent.types import Record, RecordKind, new_event_id


def stored(payload: dict[str, object], replayed: bool, decode_payload: bool = True) -> Record:
    """A record as a forwarder gets it from the outbox."""
    r = Record(id=new_event_id(), kind=RecordKind.DEFECT, payload=payload, line="L1",
               station="S1")
    e: Encoded = encode("mes", r)
    row = (1, r.id, str(r.kind), r.line, r.station, e.created_iso, e.payload, 0)
    return decode(row, replayed, decode_payload).record


@pytest.mark.parametrize("payload", [
    {"schema_version": 1, "defect_class": "scratch", "score": 0.93, "frames": [1, 2]},
    {},
    {"text": "Grüße, 温度 \u2603", "nested": {"a": None, "b": [True, False]}},
    {"replayed": "set by someone else", "n": 1},  # the slow path: replayed is replaced
    {"note": "NaN is only text here"},  # the slow path, same result
])
@pytest.mark.parametrize("replayed", [False, True])
def test_spliced_bytes_decode_to_what_the_payload_path_sends(payload: dict[str, object],
                                                             replayed: bool) -> None:
    for lazy in (False, True):
        r = stored(payload, replayed, decode_payload=not lazy)
        want = json.loads(encode_json({**payload, "replayed": replayed}))
        got = wire_bytes(r)
        assert json.loads(got) == want
        assert list(json.loads(got)) == list(want)  # member order kept, replayed last
        assert wire_payload(r) == want


def test_nan_in_a_stored_payload_is_still_refused_as_not_json() -> None:
    r = stored({"score": math.nan}, False)
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        wire_bytes(r)


def test_record_without_stored_json_is_encoded_from_its_payload() -> None:
    r = Record(id="x", kind=RecordKind.DEFECT, payload={"a": 1}, replayed=True)
    assert wire_bytes(r) == b'{"a":1,"replayed":true}'
