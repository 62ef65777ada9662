"""MQTT sink with TLS (test CA), mutual TLS and password auth against a real Mosquitto;
refused connections give one clear error naming the broker, and records stay undelivered
(send raises SinkUnavailable, so the outbox keeps them)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agent.config  # noqa: F401  (import before any plugin module: circular import)
from agent.protocols.base import SinkState, SinkUnavailable
from tests.integration.test_mqtt_sink import make_sink, wait_state
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_peer import broker_conf, defect_record
from tests.support.tls import Pki, make_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def _broker(tmp_path: Path, *conf: str) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path, extra_conf=broker_conf(*conf)).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki) -> Iterator[Mosquitto]:
    yield from _broker(tmp_path, pki.mosquitto_conf())


@pytest.fixture
def mtls_broker(tmp_path: Path, pki: Pki) -> Iterator[Mosquitto]:
    yield from _broker(tmp_path, pki.mosquitto_conf(require_client_cert=True))


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "edge", "s3cret"], check=True)
    yield from _broker(tmp_path, f"password_file {pw}")


async def deliver_one(broker: Mosquitto, tmp_path: Path, **cfg: Any) -> None:
    sink = make_sink(broker, tmp_path, **cfg)
    await sink.start()
    try:
        await wait_state(sink, SinkState.CONNECTED)
        await sink.send([defect_record()])
    finally:
        await sink.close()
    assert sink.stats().acked == 1


async def refused(broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                  **cfg: Any) -> str:
    """Start a sink the broker refuses; check FAILED, send unavailable, one error logged."""
    caplog.set_level(logging.DEBUG, logger="agent.protocols.mqtt.sink")
    sink = make_sink(broker, tmp_path, reconnect_max_s=1, **cfg)
    await sink.start()
    try:
        await wait_state(sink, SinkState.FAILED)
        with pytest.raises(SinkUnavailable) as err:
            await sink.send([defect_record()])
        while sink.stats().connect_failures < 2:  # it keeps retrying (capped backoff)
            await asyncio.sleep(0.05)
    finally:
        await sink.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # logged once, not per retry
    assert f"broker {broker.host}:{broker.port}" in errors[0].getMessage()
    assert sink.stats().acked == 0
    return str(err.value)


async def test_tls_with_ca_file(tls_broker: Mosquitto, tmp_path: Path, pki: Pki) -> None:
    await deliver_one(tls_broker, tmp_path, tls={"ca_file": str(pki.ca)})


async def test_tls_ca_relative_to_config_dir(tls_broker: Mosquitto, tmp_path: Path) -> None:
    await deliver_one(tls_broker, tmp_path, tls={"ca_file": "pki/ca.pem"})


async def test_tls_untrusted_server_certificate(tls_broker: Mosquitto, tmp_path: Path,
                                                pki: Pki,
                                                caplog: pytest.LogCaptureFixture) -> None:
    why = await refused(tls_broker, tmp_path, caplog, tls={"ca_file": str(pki.other_ca)})
    assert "TLS certificate verification failed" in why
    assert f"127.0.0.1:{tls_broker.port}" in why


async def test_tls_against_system_store_fails_for_private_ca(
        tls_broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    why = await refused(tls_broker, tmp_path, caplog, tls={})
    assert "TLS certificate verification failed" in why


async def test_mutual_tls(mtls_broker: Mosquitto, tmp_path: Path, pki: Pki) -> None:
    await deliver_one(mtls_broker, tmp_path, tls={"ca_file": str(pki.ca),
                                                  "cert_file": str(pki.client_cert),
                                                  "key_file": str(pki.client_key)})


async def test_mutual_tls_without_client_certificate(
        mtls_broker: Mosquitto, tmp_path: Path, pki: Pki,
        caplog: pytest.LogCaptureFixture) -> None:
    why = await refused(mtls_broker, tmp_path, caplog, tls={"ca_file": str(pki.ca)})
    assert "before CONNACK (client certificate refused" in why


async def test_password_auth(auth_broker: Mosquitto, tmp_path: Path) -> None:
    await deliver_one(auth_broker, tmp_path, username="edge", password="s3cret")


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_bad_password_is_a_clear_failure(auth_broker: Mosquitto, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture,
                                               protocol: str) -> None:
    why = await refused(auth_broker, tmp_path, caplog, username="edge", password="wrong",
                        protocol=protocol)
    assert "not connected" in why
    assert "bad user name or password" in why or "not authorized" in why
    assert "s3cret" not in caplog.text and "wrong" not in caplog.text
