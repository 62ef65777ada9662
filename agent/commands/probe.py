"""Commissioning check without actuating: connect to every PLC and sink, check every
mapped OPC UA node exists and its DataType fits, read back every Modbus address,
check MQTT publish permission (QoS 1 test message, PUBACK awaited), open every
GenICam camera (model, serial, firmware, pixel format and exposure in effect, fps
over 2 s, stream statistics), and print a table of OK/FAIL per signal. Exit 0 when all OK, 1 otherwise, 2 on a bad config.

--inject-test-defect STATION sends a marked test defect end to end (PLC defect
code + an MQTT defect message with "test": true); add --actuate to also send a
real stop through the command path and see the line stop."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from agent.commands import EXIT_CONFIG, load_or_report
from agent.config.station import StationSignals
from agent.configfile import LoadedConfig
from agent.configfile.root import AgentConfig
from agent.control.dispatcher import CommandDispatcher
from agent.protocols.base import SinkContext, SinkState
from agent.protocols.file.config import FileSinkConfig
from agent.protocols.file.probe import probe_file
from agent.protocols.http.config import HttpSinkConfig
from agent.protocols.http.probe import probe_http
from agent.protocols.link import PlcError, PlcLink
from agent.protocols.mqtt.config import MqttSinkConfig
from agent.protocols.mqtt.factory import topic_map
from agent.protocols.mqtt.probe import mqtt_publish
from agent.protocols.probe import ProbeRow, probe_link
from agent.runtime.build import build_plc
from agent.types import Command, CommandKind, CommandOutcome, new_event_id

TEST_CODE = 65535


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file")
    p.add_argument("--inject-test-defect", metavar="STATION",
                   help="send a marked test defect for STATION (line/station or station) end to end")
    p.add_argument("--test-code", type=int, default=TEST_CODE, help=f"defect code of the test defect (default {TEST_CODE})")
    p.add_argument("--actuate", action="store_true", help="with --inject-test-defect: also send a real stop")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each connection (default 5)")


def main(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return EXIT_CONFIG
    try:
        station = find_station(loaded.config, args.inject_test_defect) if args.inject_test_defect else None
    except ValueError as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return 2
    rows = asyncio.run(run_probe(loaded, station, args.test_code, args.actuate, args.timeout))
    print(render(rows))
    failed = sum(not r.ok for r in rows)
    print(f"\n{len(rows) - failed} OK, {failed} FAIL")
    return 1 if failed else 0


def find_station(cfg: AgentConfig, text: str) -> tuple[str, str]:
    for sep in ("/", "."):
        if sep in text:
            line, station = text.split(sep, 1)
            if line in cfg.lines and station in cfg.lines[line].stations:
                return line, station
    hits = [(ln, sn) for ln, sn, _ in cfg.stations() if sn == text]
    if len(hits) == 1:
        return hits[0]
    known = ", ".join(f"{ln}/{sn}" for ln, sn, _ in cfg.stations())
    raise ValueError(f"station {text!r} not found or ambiguous; stations: {known}")


async def run_probe(loaded: LoadedConfig, inject: tuple[str, str] | None, test_code: int,
                    actuate: bool, timeout: float) -> list[ProbeRow]:
    cfg = loaded.config
    ctx = SinkContext(cfg.site, cfg.agent_id, loaded.base_dir, loaded.resolve(cfg.state_dir))
    rows: list[ProbeRow] = []
    for name, pc in cfg.plcs.items():
        link: PlcLink = build_plc(name, pc, ctx)
        await link.start()
        try:
            rows += await probe_link(link, mapped_signals(cfg, name), timeout, pc.timeout_ms / 1000)
            if inject and _station_cfg(cfg, inject).plc == name and link.state is SinkState.CONNECTED:
                rows += await inject_plc(link, cfg, inject, test_code, actuate)
        finally:
            await link.close()
    rows += await asyncio.to_thread(probe_sinks, loaded, inject, test_code, timeout)
    rows += await asyncio.to_thread(probe_cameras, cfg)
    return rows


def probe_cameras(cfg: AgentConfig, seconds: float = 2.0) -> list[ProbeRow]:
    """Open each GenICam camera: identity, settings in effect, fps over `seconds`, stream stats."""
    from agent.capture.genicam.config import GenICamCameraConfig
    from agent.capture.genicam.probe import probe_genicam

    rows: list[ProbeRow] = []
    for name, cc in cfg.cameras.items():
        if isinstance(cc, GenICamCameraConfig):
            res = probe_genicam(name, cc, seconds)
            rows.append(ProbeRow(name, "camera", cc.selector(), res.ok, res.detail))
    return rows


def _station_cfg(cfg: AgentConfig, key: tuple[str, str]) -> Any:
    return cfg.lines[key[0]].stations[key[1]]


async def inject_plc(link: PlcLink, cfg: AgentConfig, key: tuple[str, str], test_code: int,
                     actuate: bool) -> list[ProbeRow]:
    st = _station_cfg(cfg, key)
    label = f"{key[0]}/{key[1]} test defect"
    rows: list[ProbeRow] = []
    if st.signals.defect_code:
        try:
            await link.write(st.signals.defect_code, test_code, 1.0)
            rows.append(ProbeRow(link.name, label, st.signals.defect_code, True, f"defect_code {test_code} written"))
        except PlcError as exc:
            rows.append(ProbeRow(link.name, label, st.signals.defect_code, False, str(exc)))
    if actuate:
        rows.append(await _send_stop(link, key, st, test_code))
    return rows


async def _send_stop(link: PlcLink, key: tuple[str, str], st: Any, test_code: int) -> ProbeRow:
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, {key: st.signals}, outcomes.append)
    now = time.monotonic()
    disp.submit(Command(CommandKind.STOP, link.name, key[0], key[1], new_event_id(),
                        deadline=now + st.stop_deadline_ms / 1000, created=now,
                        defect_code=test_code, rule="probe --inject-test-defect --actuate",
                        evidence={"test": True}))
    await disp.start()
    await disp.stop()
    out = outcomes[0]
    detail = f"{out.status}" + (f" in {out.latency_ms:.1f} ms" if out.latency_ms is not None else "")
    return ProbeRow(link.name, f"{key[0]}/{key[1]} test stop", st.signals.stop_request or "-",
                    out.status == "acked", detail + (f": {out.error}" if out.error else ""))


def probe_sinks(loaded: LoadedConfig, inject: tuple[str, str] | None, test_code: int,
                timeout: float) -> list[ProbeRow]:
    cfg = loaded.config
    rows: list[ProbeRow] = []
    for name, sc in cfg.sinks.items():
        if isinstance(sc, MqttSinkConfig):
            msgs = _mqtt_messages(cfg, name, sc, inject, test_code)
            cid = f"{sc.client_id or cfg.agent_id}-probe"
            rows += mqtt_publish(name, sc, loaded.base_dir, cid, msgs, timeout)
        elif isinstance(sc, FileSinkConfig):
            rows.append(probe_file(name, sc, loaded.base_dir))
        elif isinstance(sc, HttpSinkConfig):
            rows.append(probe_http(name, sc, timeout))
    return rows


def _mqtt_messages(cfg: AgentConfig, sink: str, sc: MqttSinkConfig, inject: tuple[str, str] | None,
                   test_code: int) -> list[tuple[str, dict[str, Any]]]:
    now: Callable[[], str] = lambda: datetime.now(UTC).isoformat()  # noqa: E731
    msgs: list[tuple[str, dict[str, Any]]] = []
    topics = topic_map(sc, cfg.site, cfg.agent_id)  # the daemon's topics, overrides included
    for line, station, st in cfg.stations():
        if sink not in st.sinks:
            continue
        topic = topics.station_topic("probe", line, station)
        msgs.append((topic, {"schema_version": 1, "probe": True, "agent_id": cfg.agent_id, "time": now()}))
        if inject == (line, station):
            msgs.append((topics.station_topic("defect", line, station), {
                "schema_version": 1, "test": True, "event_id": new_event_id(), "site": cfg.site,
                "line": line, "station": station, "defect_code": test_code,
                "defect_class": "probe-test", "time": now(), "agent_id": cfg.agent_id}))
    return msgs


def render(rows: list[ProbeRow]) -> str:
    head = ("TARGET", "SIGNAL", "ADDRESS", "RESULT", "DETAIL")
    body = [(r.target, r.signal, r.address, "OK" if r.ok else "FAIL", r.detail) for r in rows]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(4)]
    lines = []
    for row in [head, *body]:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    return "\n".join(lines)


def mapped_signals(cfg: AgentConfig, plc: str) -> list[tuple[str, str, str]]:
    """(label, signal, address) of everything mapped on one PLC target."""
    pc = cfg.plcs[plc]
    out: list[tuple[str, str, str]] = []
    if pc.heartbeat.counter:
        out.append(("heartbeat", "heartbeat", pc.heartbeat.counter))
    if pc.heartbeat.status:
        out.append(("status", "status", pc.heartbeat.status))
    if pc.reset:
        out.append(("reset", "reset", pc.reset))
    for line, station, st in cfg.stations():
        if st.plc == plc:
            out.extend((f"{line}/{station} {s}", s, a) for s, a in _station(st.signals))
    return out


def _station(sig: StationSignals) -> Iterable[tuple[str, str]]:
    return ((name, addr) for name, addr in sig.model_dump().items() if addr is not None)
