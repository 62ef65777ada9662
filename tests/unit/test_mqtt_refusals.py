"""Every MQTT client of the agent reads a refused connection the same way: the MQTT sink, the
Sparkplug sink, the MQTT PLC link, `probe`, `reset` and `alerts`, against a fake broker that
answers CONNECT with one CONNACK reason code, give the reason of the one table
(agent.protocols.mqtt.refusals) and, where they decide, the same decision: FAILED / give up
when retrying cannot help, retry otherwise."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from agent.backoff import Backoff
from agent.commands import alerts, reset
from agent.protocols.base import SinkContext, SinkState, SinkUnavailable
from agent.protocols.mqtt import factory as mqtt_factory
from agent.protocols.mqtt.config import MqttSinkConfig
from agent.protocols.mqtt.plc_config import MqttPlcConfig
from agent.protocols.mqtt.plc_link import MqttPlcLink
from agent.protocols.mqtt.probe import mqtt_publish
from agent.protocols.mqtt.refusals import REFUSED_FOR_GOOD, describe_connack
from agent.protocols.sparkplug import factory as spb_factory
from agent.protocols.sparkplug.config import SparkplugSinkConfig
from tests.conftest import REPO
from tests.support.connack_broker import V311_CODE, ConnackBroker

RETRYABLE = (0x80, 0x88, 0x89, 0x97, 0x9C, 0x9F)  # unspecified, unavailable, busy, quota,
# use another server (temporary), rate
CODES = sorted(REFUSED_FOR_GOOD) + list(RETRYABLE)

# what a caller saw: (the reason it gives, its decision: for good? None where it takes none)
Seen = tuple[str, bool | None]
Caller = Callable[[int, str, Path], Awaitable[Seen]]


def _ctx(tmp_path: Path) -> SinkContext:
    return SinkContext("plant", "edge1", tmp_path, tmp_path)


async def _until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.01)


async def mqtt_sink(port: int, protocol: str, tmp_path: Path) -> Seen:
    cfg = MqttSinkConfig(type="mqtt", host="127.0.0.1", port=port, protocol=protocol)
    sink = mqtt_factory.build("mes", cfg, _ctx(tmp_path))
    await sink.start()
    try:
        await _until(lambda: sink.state in (SinkState.FAILED, SinkState.DISCONNECTED))
        failed = sink.state is SinkState.FAILED
    finally:
        await sink.close()
    return str(sink.stats().last_error), failed


async def sparkplug_sink(port: int, protocol: str, tmp_path: Path) -> Seen:
    cfg = SparkplugSinkConfig(type="sparkplug", host="127.0.0.1", port=port, protocol=protocol,
                              group_id="plant")
    sink = spb_factory.build("spb", cfg, _ctx(tmp_path))
    await sink.start()
    try:
        await _until(lambda: sink.state in (SinkState.FAILED, SinkState.DISCONNECTED))
        failed = sink.state is SinkState.FAILED
        with pytest.raises(SinkUnavailable) as err:
            await sink.send([])
    finally:
        await sink.close()
    return str(err.value).removeprefix(f"{sink.where}: "), failed


async def plc_link(port: int, protocol: str, tmp_path: Path) -> Seen:
    assert protocol == "5"  # the MQTT PLC link speaks MQTT 5 only
    cfg = MqttPlcConfig(type="mqtt", host="127.0.0.1", port=port)
    link: MqttPlcLink = mqtt_factory.build_plc("plc1", cfg, _ctx(tmp_path))
    link._backoff = Backoff(60, 60)  # one attempt is enough here
    await link.start()
    try:
        await _until(lambda: link.stats().connect_failures > 0)
        failed = link.state is SinkState.FAILED
    finally:
        await link.close()
    error = str(link.stats().last_error).removeprefix("connect failed: ")
    return error.removeprefix(f"{link.where}: "), failed


async def probe(port: int, protocol: str, tmp_path: Path) -> Seen:
    cfg = MqttSinkConfig(type="mqtt", host="127.0.0.1", port=port, protocol=protocol)
    rows = await asyncio.to_thread(mqtt_publish, "mes", cfg, tmp_path, "edge1-probe", [], 5.0)
    assert [(r.signal, r.ok) for r in rows] == [("connect", False)]
    return rows[0].detail, None


def _config(tmp_path: Path, port: int, protocol: str) -> Path:
    (tmp_path / "cmd-key").write_text("4b1d9e0c7a2f3e5d6c8b9a0f1e2d3c4b\n")
    cfg = {
        "site": "plant", "agent_id": "edge1", "state_dir": str(tmp_path / "state"),
        "cameras": {"cam1": {"type": "synthetic"}},
        "models": {"m": {"path": str(REPO / "models" / "defect-cnn")}},
        "sinks": {"mes": {"type": "mqtt", "host": "127.0.0.1", "port": port,
                          "protocol": protocol,
                          "commands": {"enabled": True, "key": "${file:cmd-key}"}}},
        "lines": {"L1": {"stations": {"S1": {"camera": "cam1", "model": "m",
                                             "sinks": ["mes"]}}}},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(json.dumps(cfg))
    return path


async def reset_command(port: int, protocol: str, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> Seen:
    path = _config(tmp_path, port, protocol)
    # 1.5 s: a refusal retrying can fix is tried again until the timeout, then reported
    rc = await asyncio.to_thread(reset.send_command, str(path), "reset", "L1", "S1", "op", 1.5)
    err = capsys.readouterr().err
    assert rc == 1, err
    prefix = f"reset L1/S1: not sent: broker 127.0.0.1:{port}: "
    assert err.startswith(prefix), err
    return err.removeprefix(prefix).strip(), None


def alerts_command(port: int, protocol: str, tmp_path: Path,
                   capsys: pytest.CaptureFixture[str]) -> Seen:
    parser = argparse.ArgumentParser()
    alerts.add_arguments(parser)
    args = parser.parse_args(["--config", str(_config(tmp_path, port, protocol))])
    rc = alerts.main(args)  # in the main thread: it sets signal handlers
    err = capsys.readouterr().err
    assert rc == 1, err
    prefix = f"edge-agent alerts: cannot connect to broker 127.0.0.1:{port}: "
    assert err.startswith(prefix), err
    return err.removeprefix(prefix).strip(), None


def alerts_after_connect(code: int) -> Seen:
    """Once subscribed, `alerts` gives up on a refusal for good and lets paho retry others."""
    session = alerts._Session("edge/+/+/+/defect", "broker b:1883", err=io.StringIO())
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)  # not connected: not used
    session.on_reconnect(client, None, None, ReasonCode(PacketTypes.CONNACK, identifier=code),
                         None)
    gave_up = session.stop.is_set()
    assert (session.refused is not None) == gave_up
    return describe_connack(ReasonCode(PacketTypes.CONNACK, identifier=code)).reason, gave_up


async def _every_caller(codes: list[int], protocol: str, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> dict[int, dict[str, Seen]]:
    """What each caller saw of each code (a fake broker per code, all at once: a refused
    sink takes ~1 s to close, paho's reconnect wait)."""
    callers: dict[str, Caller] = {"mqtt sink": mqtt_sink, "sparkplug sink": sparkplug_sink,
                                  "probe": probe}
    if protocol == "5":
        callers["plc link"] = plc_link
    with ExitStack() as stack:
        brokers = {code: stack.enter_context(ConnackBroker(code)) for code in codes}

        async def one(code: int, name: str) -> Seen:
            d = tmp_path / f"{code:02X}" / name.replace(" ", "_")
            d.mkdir(parents=True)
            return await callers[name](brokers[code].port, protocol, d)

        keys = [(code, name) for code in codes for name in callers]
        found = await asyncio.gather(*(one(code, name) for code, name in keys))
        seen: dict[int, dict[str, Seen]] = {code: {} for code in codes}
        for (code, name), got in zip(keys, found, strict=True):
            seen[code][name] = got
        for code in codes:  # one at a time: what they print is read back
            d = tmp_path / f"{code:02X}" / "cli"
            d.mkdir()
            seen[code]["reset"] = await reset_command(brokers[code].port, protocol, d, capsys)
            seen[code]["alerts"] = alerts_command(brokers[code].port, protocol, d, capsys)
            seen[code]["alerts, once up"] = alerts_after_connect(code)
    return seen


def _expected(code: int, callers: list[str]) -> dict[str, Seen]:
    """The table's reason for every caller; its decision for those that take one."""
    reason, for_good = describe_connack(ReasonCode(PacketTypes.CONNACK, identifier=code))
    deciding = ("mqtt sink", "sparkplug sink", "plc link", "alerts, once up")
    return {name: (reason, for_good if name in deciding else None) for name in callers}


async def test_every_caller_reads_a_refusal_alike(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """MQTT 5: each CONNACK reason code of the table, and some that retrying can fix."""
    assert not set(RETRYABLE) & set(REFUSED_FOR_GOOD)
    seen = await _every_caller(CODES, "5", tmp_path, capsys)
    assert seen == {code: _expected(code, list(seen[code])) for code in CODES}
    assert {code for code in CODES if seen[code]["mqtt sink"][1]} == set(REFUSED_FOR_GOOD)


async def test_mqtt_311_return_codes_read_as_their_mqtt5_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """MQTT 3.1.1 (the PLC link speaks 5 only): return codes 1-5, as paho maps them."""
    codes = sorted(V311_CODE)
    seen = await _every_caller(codes, "3.1.1", tmp_path, capsys)
    assert seen == {code: _expected(code, list(seen[code])) for code in codes}
    assert "plc link" not in seen[codes[0]] and len(seen[codes[0]]) == 6


def test_a_tls_connection_that_broke_off_is_retried_a_refused_certificate_is_not() -> None:
    import ssl

    from agent.protocols.mqtt.refusals import describe_connect_error

    for exc in (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
                ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed"),
                ssl.SSLSyscallError(5, "Some I/O error occurred")):
        refusal = describe_connect_error(exc)
        assert not refusal.for_good and "broke off" in refusal.reason, exc
    bad_cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    bad_cert.verify_message = "self-signed certificate"
    assert describe_connect_error(bad_cert) == (
        "TLS certificate verification failed: self-signed certificate", True)
    handshake = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    assert describe_connect_error(handshake).for_good
