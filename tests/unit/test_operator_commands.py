"""Operator commands, pure logic: HMAC over the canonical command, validation, time window,
the seen-id store, the config's key rules and the rate-limited rejection log."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.configfile import ConfigError, parse_config
from agent.protocols.mqtt.command_auth import canonical, keyring
from agent.protocols.mqtt.command_replay import SeenIds
from agent.protocols.mqtt.commands import CommandPolicy, OperatorAction, evaluate
from agent.protocols.mqtt.config import MqttSinkConfig
from agent.protocols.mqtt.factory import command_keyring
from agent.protocols.mqtt.listener import RejectionLog
from tests.unit.test_config import BASE

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
TOPIC = "edge/plant1/agent/edge-07/cmd"
KEY = "k" * 32
KEYS = keyring("2026-11", KEY, {"2026-05": "o" * 32})
POLICY = CommandPolicy(keyring=KEYS, allowed_client_ids=("hmi",), max_age_s=30, max_future_s=5)


def body(**over: object) -> dict[str, object]:
    b = {"command": "reset", "line": "L1", "station": "S1", "id": "x", "time": NOW.isoformat(),
         "client_id": "hmi", **over}
    return {k: v for k, v in b.items() if v is not None}


def cmd(topic: str = TOPIC, **over: object) -> bytes:
    return json.dumps(KEYS.sign(topic, body(**over))).encode()


def test_mac_is_hmac_sha256_over_topic_and_canonical_json() -> None:
    """The scheme as documented, computed independently: an HMI can implement it."""
    signed = KEYS.sign(TOPIC, body())
    text = json.dumps({k: v for k, v in signed.items() if k != "mac"}, sort_keys=True,
                      separators=(",", ":"))
    assert canonical(TOPIC, signed) == f"{TOPIC}\n{text}".encode()
    expected = hmac.new(KEY.encode(), f"{TOPIC}\n{text}".encode(), hashlib.sha256).hexdigest()
    assert signed["kid"] == "2026-11" and signed["mac"] == expected
    assert KEY not in json.dumps(signed)


def test_command_accepted() -> None:
    out = evaluate(cmd(), POLICY, TOPIC, NOW + timedelta(seconds=5))
    assert out.accepted and out.command is not None and out.authenticated
    assert out.command.action is OperatorAction.RESET and out.reply()["id"] == "x"


def test_key_order_and_whitespace_do_not_matter() -> None:
    signed = KEYS.sign(TOPIC, body())
    raw = json.dumps(dict(reversed(list(signed.items()))), indent=2).encode()
    assert evaluate(raw, POLICY, TOPIC, NOW).accepted


def test_previous_key_is_accepted_during_rotation() -> None:
    old = keyring("2026-05", "o" * 32, {})
    raw = json.dumps(old.sign(TOPIC, body())).encode()
    assert evaluate(raw, POLICY, TOPIC, NOW).accepted


def tampered() -> bytes:
    signed = KEYS.sign(TOPIC, body(command="pause"))
    signed["command"] = "reset"
    return json.dumps(signed).encode()


@pytest.mark.parametrize(("raw", "code", "why"), [
    (lambda: tampered(), "unauthenticated", "wrong mac"),
    (lambda: json.dumps(body()).encode(), "unauthenticated", "`kid` and `mac` are required"),
    (lambda: json.dumps(keyring("2027", KEY, {}).sign(TOPIC, body())).encode(),
     "unauthenticated", "unknown key id '2027'"),
    (lambda: json.dumps(keyring("2026-11", "x" * 32, {}).sign(TOPIC, body())).encode(),
     "unauthenticated", "wrong mac"),
    (lambda: cmd(topic="edge/plant1/agent/edge-08/cmd"), "unauthenticated", "wrong mac"),
    (lambda: cmd(time="2026-11-27T09:30:00"), "invalid", "timezone"),
    (lambda: cmd(id=None), "invalid", "id"),
    (lambda: cmd(time=(NOW - timedelta(seconds=31)).isoformat()), "stale", "not executed late"),
    (lambda: cmd(time=(NOW + timedelta(seconds=6)).isoformat()), "future", "in the future"),
    (lambda: cmd(time=(NOW + timedelta(seconds=29)).isoformat()), "future", "in the future"),
    (lambda: cmd(client_id=None), "client", "client id None is not allowed"),
    (lambda: cmd(command="pause", line=None), "invalid", "pause needs line and station"),
    (lambda: b"\xff\xfe", "malformed", "not JSON"),
    (lambda: b"[" * 5000, "malformed", "too large"),
    (lambda: b"[" * 4000, "malformed", "not JSON"),
])
def test_command_rejected(raw, code: str, why: str) -> None:  # type: ignore[no-untyped-def]
    out = evaluate(raw(), POLICY, TOPIC, NOW)
    assert not out.accepted and out.code == code and why in out.reason and out.command is None


def test_hostile_text_is_refused_without_raising() -> None:
    raw = b'{"command": "reset", "id": "\\ud800x", "client_id": "\\udfff", "kid": "2026-11", ' \
          b'"mac": "\\ud800", "time": "2026-11-27T09:30:00Z"}'
    out = evaluate(raw, POLICY, TOPIC, NOW)
    assert out.code == "unauthenticated" and out.reason == "not authenticated: wrong mac"
    json.dumps(out.audit_fields(), ensure_ascii=False).encode()  # the audit can write it
    json.dumps(out.reply(), ensure_ascii=False).encode()
    signed = KEYS.sign(TOPIC, body(id="\ud800"))
    assert evaluate(json.dumps(signed).encode(), POLICY, TOPIC, NOW).code == "invalid"


def test_rejected_outcome_keeps_claimed_id_and_client_for_the_audit() -> None:
    out = evaluate(tampered(), POLICY, TOPIC, NOW)
    fields = out.audit_fields()
    assert (fields["id"], fields["client"], fields["command"]) == ("x", "hmi", "reset")
    assert fields["authenticated"] is False and fields["reason"] == "not authenticated: wrong mac"


def test_answers_verify_only_on_the_result_topic() -> None:
    reply = KEYS.sign(TOPIC + "/result", {"id": "x", "accepted": True})
    assert KEYS.verify(TOPIC + "/result", reply) is None
    assert KEYS.verify(TOPIC, reply) == "not authenticated: wrong mac"


# ---- seen ids -----------------------------------------------------------------------

T0 = NOW.timestamp()


def test_seen_ids_refuse_a_repeat_and_survive_a_reload(tmp_path: Path) -> None:
    seen = SeenIds(tmp_path / "ids.json", window_s=30)
    assert seen.check_and_add("a", T0, T0) is None
    assert "seen before" in (seen.check_and_add("a", T0, T0 + 1) or "")
    seen.save(seen.snapshot())
    again = SeenIds(tmp_path / "ids.json", window_s=30)
    again.load(T0 + 10)
    assert "seen before" in (again.check_and_add("a", T0, T0 + 10) or "")
    assert again.check_and_add("a", T0, T0 + 31) is None  # out of the window: forgotten


def test_seen_ids_file_unreadable_refuses_older_commands(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "ids.json").write_text("{garbage")
    seen = SeenIds(tmp_path / "ids.json", window_s=30)
    seen.load(T0)
    assert "cannot be read" in caplog.text
    assert "could be a replay" in (seen.check_and_add("a", T0 - 1, T0 + 1) or "")
    assert seen.check_and_add("b", T0 + 1, T0 + 1) is None
    assert seen.check_and_add("c", T0 - 1, T0 + 31) is None  # window over


def test_seen_ids_bounded(tmp_path: Path) -> None:
    seen = SeenIds(tmp_path / "ids.json", window_s=30, max_ids=2)
    assert seen.check_and_add("a", T0, T0) is None and seen.check_and_add("b", T0, T0) is None
    assert "more than 2 commands" in (seen.check_and_add("c", T0, T0) or "")


# ---- config ---------------------------------------------------------------------------

def config_errors(tmp_path: Path, commands: str) -> list[str]:
    """The errors `edge-agent check` prints for an MQTT sink with these `commands`."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.onnx").write_bytes(b"x")
    text = BASE.replace("sinks:\n  s1:", "sinks:\n  m:\n    type: mqtt\n    host: h\n"
                        f"    commands: {commands}\n  s1:")
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "t.yaml", tmp_path, {"K": KEY, "SHORT": "let-me-in"})
    return [i.format("t.yaml") for i in exc.value.issues]


@pytest.mark.parametrize(("commands", "why"), [
    ("{enabled: true}", "commands.enabled needs `key`"),
    ("{enabled: true, key: '${env:SHORT}'}", "key '1' is shorter than 16"),
    ("{key: '${env:K}', previous_keys: {old: '${env:SHORT}'}}", "key 'old' is shorter than 16"),
    ("{key: '${env:K}', key_id: a, previous_keys: {a: '${env:K}'}}",
     "both the current and a previous"),
    ("{enabled: true, shared_secret: '${env:SHORT}'}", "`shared_secret` is gone"),
])
def test_config_refuses_weak_or_missing_keys(tmp_path: Path, commands: str, why: str) -> None:
    errs = config_errors(tmp_path, commands)
    assert len(errs) == 1 and why in errs[0] and errs[0].startswith("t.yaml:"), errs
    assert "let-me-in" not in errs[0] and KEY not in errs[0]


def test_config_keys_from_systemd_credentials(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "cmd-key").write_text(KEY + "\n")
    (creds / "cmd-key-old").write_text("o" * 32 + "\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.onnx").write_bytes(b"x")
    commands = ("{enabled: true, key: '${cred:cmd-key}', key_id: '2026-11', "
                "previous_keys: {'2026-05': '${cred:cmd-key-old}'}}")
    text = BASE.replace("sinks:\n  s1:", "sinks:\n  m:\n    type: mqtt\n    host: h\n"
                        f"    commands: {commands}\n  s1:")
    cfg = parse_config(text, "t.yaml", tmp_path, {"CREDENTIALS_DIRECTORY": str(creds)}).config
    sink = cfg.sinks["m"]
    assert isinstance(sink, MqttSinkConfig)
    keys = command_keyring(sink.commands)
    assert keys is not None and keys.current == "2026-11"
    assert dict(keys.keys) == {"2026-11": KEY.encode(), "2026-05": b"o" * 32}
    assert KEY not in repr(cfg) and KEY not in repr(keys)


# ---- log flood --------------------------------------------------------------------------

def test_rejection_log_warns_once_then_summarises(caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    rl = RejectionLog(logging.getLogger("t.flood"), "sink", interval_s=60, clock=lambda: clock[0])
    bad = evaluate(b"{not json", POLICY, TOPIC, NOW)
    forged = evaluate(tampered(), POLICY, TOPIC, NOW)
    with caplog.at_level(logging.DEBUG, "t.flood"):
        for i in range(2000):
            clock[0] = i * 0.01
            rl.rejected(bad)
        rl.rejected(forged)
        rl.flush()  # not due yet
        clock[0] = 61.0
        rl.flush()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "not JSON" in warnings[0]
    assert "2000 operator command(s) rejected" in warnings[1]
    assert "malformed 1999" in warnings[1] and "unauthenticated 1" in warnings[1]
    assert rl.total == 2001


def test_documented_examples_verify_with_the_documented_key() -> None:
    """docs/mqtt-topics.md signs its command and answer examples with a published key: an
    HMI programmer can check an implementation of the scheme against them."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "mqtt-topics.md").read_text()
    blocks = dict(re.findall(r"<!-- (?:schema|signed): (command|result) -->\n```json\n(.*?)\n```",
                             doc, re.S))
    keys = keyring("2026-11", "example-key-0123456789abcdef", {})
    assert keys.verify(TOPIC, json.loads(blocks["command"])) is None
    assert keys.verify(TOPIC + "/result", json.loads(blocks["result"])) is None
    assert evaluate(blocks["command"].encode(), CommandPolicy(keyring=keys), TOPIC,
                    datetime(2026, 11, 27, 9, 43, 15, tzinfo=UTC)).accepted
