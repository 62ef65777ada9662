"""Decision -> PLC acknowledgement latency of a stop, over Modbus TCP and OPC UA on
loopback, next to a bare pymodbus `write_coil` and a bare asyncua `write_value`
round trip measured in the same run against the same server.

The soft PLC runs in its own process (`python -m plc`), as a real PLC would. The
agent path is the real one: Command -> CommandDispatcher (its own task) ->
ModbusLink / OpcUaLink -> acknowledged write of stop_request; latency is
`CommandOutcome.latency_ms` (ack time - Command.created). Two agent paths are
timed: "bit only" (stop_request alone mapped: what a stop cost when the bit went
first and the data after it) and "data, then bit" (defect_code, defect_count and
last_event_seq in one request - one Modbus FC16, one OPC UA Write - then the bit:
what a stop costs now, counters saved to state_dir before each stop as the daemon
does), so the price of data-before-strobe is their difference.
Bare and agent samples are interleaved so machine noise hits all alike.

    .venv/bin/python bench/bench_stop.py [--n 1000] [--warmup 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from asyncua import Client, ua
from pymodbus.client import AsyncModbusTcpClient

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.config.station import StationSignals  # noqa: E402
from agent.control.counters import CommandCounters  # noqa: E402
from agent.control.dispatcher import CommandDispatcher  # noqa: E402
from agent.protocols.base import SinkContext  # noqa: E402
from agent.protocols.link import PlcLink  # noqa: E402
from agent.protocols.modbus.config import ModbusPlcConfig  # noqa: E402
from agent.protocols.modbus.factory import build as build_modbus  # noqa: E402
from agent.protocols.opcua.config import OpcUaPlcConfig  # noqa: E402
from agent.protocols.opcua.factory import build as build_opcua  # noqa: E402
from agent.types import Command, CommandKind, CommandOutcome, new_event_id  # noqa: E402
from plc.tags import load_tags  # noqa: E402

TAGS = load_tags()
STATION = "line1.station1"
KEY = ("line1", "station1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"soft PLC did not open port {port}")


class AgentStop:
    """Submit a STOP and wait for its outcome; returns latency_ms."""

    def __init__(self, link: PlcLink, protocol: str, state_dir: Path | None = None) -> None:
        self.outcome: asyncio.Future[CommandOutcome] | None = None
        sig = StationSignals(**TAGS.signals(STATION, protocol))
        counters = None
        if state_dir is None:  # bit only
            sig = StationSignals(stop_request=sig.stop_request)
        else:
            counters = CommandCounters.load(state_dir / f"plc-{protocol}.counters.json")
        self.disp = CommandDispatcher(link, {KEY: sig}, self._done, request_timeout=1.0,
                                      counters=counters)

    def _done(self, out: CommandOutcome) -> None:
        assert self.outcome is not None
        self.outcome.set_result(out)

    async def __call__(self) -> float:
        self.outcome = asyncio.get_running_loop().create_future()
        now = time.monotonic()
        self.disp.submit(Command(CommandKind.STOP, "plc", *KEY, new_event_id(),
                                 deadline=now + 1.0, created=now, defect_code=301))
        out = await self.outcome
        if out.latency_ms is None:
            raise SystemExit(f"stop not acknowledged: {out.status} {out.error}")
        return out.latency_ms


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    t0 = time.perf_counter()
    await call()
    return (time.perf_counter() - t0) * 1000


async def interleave(n: int, warmup: int,
                     paths: list[Callable[[], Awaitable[float]]]) -> list[list[float]]:
    out: list[list[float]] = [[] for _ in paths]
    for i in range(n + warmup):
        for samples, path in zip(out, paths, strict=True):
            x = await path()
            if i >= warmup:
                samples.append(x)
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def report(title: str, bare_name: str, bare: list[float], bit: list[float],
           data: list[float]) -> None:
    print(f"\n{title}  (n={len(bare)} each, interleaved, ms)")
    print(f"  {'':40} {'p50':>8} {'p99':>8} {'mean':>8} {'max':>8}")
    rows = ((bare_name, bare), ("agent stop, bit only: decision -> ack", bit),
            ("agent stop, data then bit", data))
    for name, xs in rows:
        print(f"  {name:40} {pct(xs, 50):8.3f} {pct(xs, 99):8.3f} {statistics.fmean(xs):8.3f} {max(xs):8.3f}")
    d50, d99 = pct(bit, 50) - pct(bare, 50), pct(bit, 99) - pct(bare, 99)
    print(f"  bit only - bare: p50 {d50:+.3f} ms ({pct(bit, 50) / pct(bare, 50):.2f}x), "
          f"p99 {d99:+.3f} ms; target p99 within 1 ms: {'MET' if d99 <= 1.0 else 'MISSED'}")
    c50, c99 = pct(data, 50) - pct(bit, 50), pct(data, 99) - pct(bit, 99)
    print(f"  data before strobe costs: p50 {c50:+.3f} ms, p99 {c99:+.3f} ms "
          f"(one more request: about one bare round trip, {pct(bare, 50):.3f} ms)")


async def bench_modbus(port: int, n: int, warmup: int, ctx: SinkContext) -> None:
    cfg = ModbusPlcConfig(type="modbus", host="127.0.0.1", port=port, timeout_ms=1000)
    link = build_modbus("bench", cfg, ctx)
    bare_client = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0, reconnect_delay=0)
    await bare_client.connect()
    await link.start()
    assert await link.wait_connected(10)
    bit, data = AgentStop(link, "modbus"), AgentStop(link, "modbus", ctx.state_dir)
    await bit.disp.start()
    await data.disp.start()
    coil = int(TAGS.tags[f"{STATION}.stop_request"].modbus.split(":")[1])
    try:
        bare, b, d = await interleave(n, warmup, [lambda: timed(
            lambda: bare_client.write_coil(coil, True, device_id=TAGS.modbus_device_id)), bit, data])
    finally:
        await bit.disp.stop()
        await data.disp.stop()
        await link.close()
        bare_client.close()
    report("Modbus TCP, loopback, soft PLC in its own process", "bare pymodbus write_coil", bare, b, d)


async def bench_opcua(endpoint: str, n: int, warmup: int, ctx: SinkContext) -> None:
    cfg = OpcUaPlcConfig(type="opcua", endpoint=endpoint, timeout_ms=1000)
    link = build_opcua("bench", cfg, ctx)
    bare_client = Client(endpoint, timeout=1)
    await bare_client.connect()
    node = bare_client.get_node(TAGS.tags[f"{STATION}.stop_request"].opcua)
    dv = ua.DataValue(ua.Variant(True, ua.VariantType.Boolean))
    await link.start()
    assert await link.wait_connected(10)
    bit, data = AgentStop(link, "opcua"), AgentStop(link, "opcua", ctx.state_dir)
    await bit.disp.start()
    await data.disp.start()
    try:
        bare, b, d = await interleave(n, warmup, [
            lambda: timed(lambda: node.write_value(dv)), bit, data])
    finally:
        await bit.disp.stop()
        await data.disp.stop()
        await link.close()
        await bare_client.disconnect()
    report("OPC UA (security None), loopback, soft PLC in its own process",
           "bare asyncua write_value", bare, b, d)


async def main(args: argparse.Namespace) -> None:
    mport, oport = free_port(), free_port()
    sim = subprocess.Popen([sys.executable, "-m", "plc", "--modbus-port", str(mport),
                            "--opcua-port", str(oport), "--quiet"], cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(mport)
        wait_port(oport)
        with tempfile.TemporaryDirectory() as tmp:
            ctx = SinkContext("bench", "bench", Path(tmp), Path(tmp))
            print(f"bench_stop: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
                  f"n={args.n}, warmup={args.warmup}")
            await bench_modbus(mport, args.n, args.warmup, ctx)
            await bench_opcua(f"opc.tcp://127.0.0.1:{oport}/edge-agent/softplc", args.n,
                              args.warmup, ctx)
    finally:
        sim.terminate()
        sim.wait(10)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000, help="samples per path (default 1000)")
    p.add_argument("--warmup", type=int, default=50, help="discarded samples first (default 50)")
    asyncio.run(main(p.parse_args()))
