"""The paho internals the MQTT client overrides exist in the pinned paho, and a paho without
one of them is refused at start with its name, never left to misbehave."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest

from agent.protocols.mqtt.client import PAHO_INTERNALS, PahoMismatch, RecordingClient


def test_the_pinned_paho_has_every_internal() -> None:
    client = RecordingClient(mqtt.CallbackAPIVersion.VERSION2, client_id="t")
    assert all(hasattr(client, name) for name in PAHO_INTERNALS)


def test_a_paho_without_one_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(mqtt.Client, "_update_inflight")
    with pytest.raises(PahoMismatch, match="lacks _update_inflight"):
        RecordingClient(mqtt.CallbackAPIVersion.VERSION2, client_id="t")
