"""The health server over real HTTP on 127.0.0.1: /healthz, /metrics, /status, bad input, floods."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.health.metrics import GaugeSample, Metrics, samples_from_stats
from agent.health.server import HealthServer, ServerLimits
from agent.health.status import HealthChecks
from agent.types import (
    Command,
    CommandKind,
    CommandOutcome,
    Finding,
    Inspection,
    ModelInfo,
    OutcomeStatus,
    Result,
    StageTimings,
    Verdict,
)


@dataclass
class Reply:
    code: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


async def request(port: int, raw: bytes, timeout: float = 10.0) -> Reply | None:
    """Send raw bytes, read to EOF. None when the server closed without answering."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    except ConnectionResetError:
        return None
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
    if not data:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return Reply(int(lines[0].split()[1]), headers, body)


async def get(port: int, path: str, token: str | None = None) -> Reply:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    reply = await request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
    assert reply is not None
    return reply


class Setup:
    def __init__(self) -> None:
        self.checks = HealthChecks()
        self.metrics = Metrics()
        self.status = {"agent_id": "edge-1", "stations": {"L1/S1": "inspecting"}}


@pytest.fixture
def setup() -> Setup:
    return Setup()


@pytest.fixture
async def server(setup: Setup) -> AsyncIterator[HealthServer]:
    srv = HealthServer("127.0.0.1:0", setup.checks, setup.metrics, lambda: setup.status, None,
                       ServerLimits(max_connections=4, max_pending=8, max_pending_per_client=6,
                                    header_timeout_s=0.5))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def _inspection(error: str | None = None) -> Inspection:
    return Inspection(
        camera_id="cam1", frame_seq=7, t_capture=0.0, wall_time=datetime.now(UTC),
        model=ModelInfo("defect", "1", "abc", "CPUExecutionProvider"),
        findings=(Finding("scratch", 0.93),),
        timings=StageTimings(frame_age_ms=3.0, pre_ms=0.4, infer_ms=12.0, post_ms=0.2),
        error=error)


def _outcome(status: OutcomeStatus, latency_ms: float | None) -> CommandOutcome:
    cmd = Command(CommandKind.STOP, "softplc", "L1", "S1", "ev-1", deadline=10.25, created=10.0,
                  defect_code=3, rule="scratch>=0.8 k1/n1 -> stop")
    return CommandOutcome(cmd, status, attempts=1, t_done=10.01, latency_ms=latency_ms)


async def test_healthz_is_200_then_503_with_the_failing_checks(setup: Setup, server) -> None:
    camera_ok = [True]
    setup.checks.register("camera:cam1", lambda: (camera_ok[0], "12.0 fps"))
    setup.checks.register("outbox", lambda: (True, "depth 0"))
    reply = await get(server.port, "/healthz")
    assert reply.code == 200 and reply.json() == {"healthy": True}

    camera_ok[0] = False
    setup.checks.register("model", lambda: 1 / 0)  # a check that raises counts as failing
    reply = await get(server.port, "/healthz")
    assert reply.code == 503
    body = reply.json()
    assert body["healthy"] is False
    assert body["failing"]["camera:cam1"] == "12.0 fps"
    assert "ZeroDivisionError" in body["failing"]["model"]
    assert "outbox" not in body["failing"]


async def test_metrics_scrape_parses_with_the_prometheus_parser(setup: Setup, server) -> None:
    m = setup.metrics
    m.observe_inspection("L1", "S1", _inspection())
    m.observe_inspection("L1", "S1", _inspection(error="session.run failed"))
    m.observe_verdict(Verdict("L1", "S1", "cam1", Result.NG, 7, defect_class="scratch",
                              latency_ms={"total": 17.0}, budget_exceeded=True))
    m.observe_verdict(Verdict("L1", "S1", "cam1", Result.OK, 8, latency_ms={"total": 9.0}))
    m.observe_outcome(_outcome(OutcomeStatus.ACKED, 8.5))
    m.observe_outcome(_outcome(OutcomeStatus.EXPIRED, None))
    m.add_gauge_source(lambda: [
        GaugeSample("edge_agent_camera_fps", {"camera": "cam1"}, 14.5, "Camera frames per second"),
        GaugeSample("edge_agent_camera_drops_total", {"camera": "cam1"}, 3, "Frames dropped",
                    "counter"),
        GaugeSample("edge_agent_provider_info", {"model": "defect",
                    "provider": "CPUExecutionProvider"}, 1, "Active execution provider"),
        *samples_from_stats("edge_agent_outbox", {"sink": "mqtt"},
                            {"depth": 5, "oldest_age_seconds": 2.5}, "Outbox"),
    ])
    m.add_gauge_source(lambda: 1 / 0)  # a broken source costs only its own samples

    reply = await get(server.port, "/metrics")
    assert reply.code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(reply.body.decode())}

    def value(family: str, sample: str, **labels: str) -> float:
        for s in fams[family].samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        raise AssertionError(f"{sample}{labels} not in /metrics")

    assert fams["edge_agent_stage_seconds"].type == "histogram"
    assert value("edge_agent_stage_seconds", "edge_agent_stage_seconds_count",
                 station="S1", stage="infer") == 2
    assert value("edge_agent_stage_seconds", "edge_agent_stage_seconds_bucket",
                 stage="infer", le="0.01") == 0  # 12 ms is above the 10 ms bucket
    assert value("edge_agent_stage_seconds", "edge_agent_stage_seconds_bucket",
                 stage="infer", le="0.025") == 2
    assert value("edge_agent_inference_errors", "edge_agent_inference_errors_total") == 1
    assert value("edge_agent_verdicts", "edge_agent_verdicts_total", result="NG") == 1
    assert value("edge_agent_defects", "edge_agent_defects_total", defect_class="scratch") == 1
    assert value("edge_agent_budget_exceeded", "edge_agent_budget_exceeded_total") == 1
    assert value("edge_agent_commands", "edge_agent_commands_total", status="acked",
                 kind="stop") == 1
    assert value("edge_agent_commands", "edge_agent_commands_total", status="expired") == 1
    assert value("edge_agent_command_latency_seconds",
                 "edge_agent_command_latency_seconds_count") == 1
    assert value("edge_agent_camera_fps", "edge_agent_camera_fps", camera="cam1") == 14.5
    assert fams["edge_agent_camera_drops"].type == "counter"
    assert value("edge_agent_camera_drops", "edge_agent_camera_drops_total") == 3
    assert value("edge_agent_provider_info", "edge_agent_provider_info",
                 provider="CPUExecutionProvider") == 1
    assert value("edge_agent_outbox_depth", "edge_agent_outbox_depth", sink="mqtt") == 5
    assert value("edge_agent_metrics_source_errors",
                 "edge_agent_metrics_source_errors_total") == 1


async def test_status_is_json_from_the_callable(setup: Setup, server) -> None:
    reply = await get(server.port, "/status?verbose=1")
    assert reply.code == 200 and reply.json() == setup.status
    setup.status = {"when": datetime(2026, 1, 2, tzinfo=UTC)}  # not JSON-native: str()
    assert (await get(server.port, "/status")).json() == {"when": "2026-01-02 00:00:00+00:00"}


async def test_bearer_token_is_required_when_configured(setup: Setup) -> None:
    srv = HealthServer("127.0.0.1:0", setup.checks, setup.metrics, dict, "s3cret")
    await srv.start()
    try:
        for path in ("/healthz", "/metrics", "/status"):
            reply = await get(srv.port, path)
            assert reply.code == 401 and reply.headers["www-authenticate"].startswith("Bearer")
        assert (await get(srv.port, "/healthz", token="wrong")).code == 401
        assert (await get(srv.port, "/healthz", token="s3cret")).code == 200
        assert (await get(srv.port, "/metrics", token="s3cret")).code == 200
    finally:
        await srv.stop()


@pytest.mark.parametrize("raw, code", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /healthz\r\n\r\n", 400),
    (b"GET healthz HTTP/1.1\r\n\r\n", 400),
    (b"GET /healthz SPDY/3\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    ("GET /h\u00e9 HTTP/1.1\r\n\r\n".encode(), 400),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # a TLS hello
    (b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
    (b"GET /admin HTTP/1.1\r\n\r\n", 404),
    (b"GET / HTTP/1.0\r\n\r\n", 404),
    (b"GET /x HTTP/1.1\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n", 431),
])
async def test_bad_requests_are_answered(server, raw: bytes, code: int) -> None:
    reply = await request(server.port, raw)
    assert reply is not None and reply.code == code
    assert "error" in reply.json()


async def test_head_has_headers_and_no_body(server) -> None:
    reply = await request(server.port, b"HEAD /healthz HTTP/1.1\r\n\r\n")
    assert reply is not None and reply.code == 200
    assert int(reply.headers["content-length"]) > 0 and reply.body == b""


async def test_a_client_that_sends_nothing_gets_408(server) -> None:
    reply = await request(server.port, b"GET /healthz HTTP/1.1\r\n")  # head never finished
    assert reply is not None and reply.code == 408


async def test_slow_clients_are_bounded_and_cannot_keep_a_request_out(server) -> None:
    # Slow clients (part of a head, then nothing) beyond the per-client bound evict the
    # oldest slow one; complete requests arriving meanwhile are all answered.
    slow = []
    for _ in range(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nX-a: ")
        await writer.drain()
        slow.append((reader, writer))
        await asyncio.sleep(0.01)
    assert server.stats().pending == 6 and server.stats().dropped == 4
    flood = [await request(server.port, b"GET /metrics HTTP/1.1\r\n\r\n", 5.0)
             for _ in range(30)]
    assert [r.code if r else None for r in flood] == [200] * 30
    # each request over the client's bound evicted the oldest slow one (closed unanswered),
    # unless its header time (0.5 s) ran out first (408)
    ends = [await asyncio.wait_for(r.read(), 10.0) for r, _ in slow]
    assert all(e == b"" or e.startswith(b"HTTP/1.1 408 ") for e in ends), ends
    assert server.stats().dropped == ends.count(b"") >= 5
    for _, writer in slow:
        writer.close()
    assert server.stats().pending == 0
    assert (await get(server.port, "/healthz")).code == 200


async def test_a_burst_of_silent_connections_is_bounded(server) -> None:
    # Connections that send nothing are slow only after a while; until then the total
    # bound refuses newcomers instead of evicting a client that had no chance to send.
    silent = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(12)]
    await asyncio.sleep(0.1)
    assert server.stats().pending == 8 and server.stats().dropped == 4
    await asyncio.sleep(0.3)  # now they are slow: a new request evicts the oldest
    assert (await get(server.port, "/healthz")).code == 200
    assert server.stats().dropped == 5
    for _, writer in silent:
        writer.close()


async def test_many_concurrent_scrapes_all_complete(setup: Setup, server) -> None:
    setup.metrics.observe_inspection("L1", "S1", _inspection())
    replies = await asyncio.gather(*(request(server.port, b"GET /healthz HTTP/1.1\r\n\r\n")
                                     for _ in range(100)))
    codes = [r.code if r else None for r in replies]
    assert codes.count(200) >= 4
    assert set(codes) <= {200, 503, None}
    assert server.stats().active == 0


async def test_stop_with_clients_still_connected_leaves_nothing_behind(setup: Setup) -> None:
    srv = HealthServer("127.0.0.1:0", setup.checks, setup.metrics, dict, None)
    await srv.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /healthz HTTP/1.1\r\n")  # never finished
    await writer.drain()
    await asyncio.sleep(0.05)
    assert srv.stats().active == 1
    await asyncio.wait_for(srv.stop(), 10.0)
    assert await asyncio.wait_for(reader.read(), 10.0) == b""
    writer.close()
    await writer.wait_closed()


async def test_rapid_scrapes_share_one_rendering(setup: Setup, server) -> None:
    renders = []
    setup.metrics.add_gauge_source(lambda: renders.append(1) or [])
    server.limits = ServerLimits(metrics_cache_s=60.0)
    replies = [await get(server.port, "/metrics") for _ in range(5)]
    assert [r.code for r in replies] == [200] * 5 and len(renders) == 1
    server.limits = ServerLimits(metrics_cache_s=0.0)
    await get(server.port, "/metrics")
    assert len(renders) == 2
