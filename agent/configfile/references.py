"""Cross-reference checks on the raw YAML data.

They run on the plain data (not on validated models) so that dangling
references are reported together with type errors, all at once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from agent.config.errors import ConfigIssue
from agent.config.station import TRIGGER_SIGNALS, WRITE_SIGNALS
from agent.protocols.modbus.address import parse_modbus_address

Issue = tuple[tuple[str | int, ...], str]
_NODE_ID = re.compile(r"^(ns=\d+;)?(i=\d+|s=.+|g=[0-9a-fA-F-]{36}|b=.+)$")


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def check_references(data: Any, base_dir: Path) -> list[Issue]:
    root = _mapping(data)
    issues: list[Issue] = []
    issues += _check_models(_mapping(root.get("models")), base_dir)
    plcs = _mapping(root.get("plcs"))
    used: dict[tuple[str, str], tuple[str | int, ...]] = {}
    issues += _check_plc_heartbeats(plcs, used)
    for line_name, line in _mapping(root.get("lines")).items():
        for st_name, st in _mapping(_mapping(line).get("stations")).items():
            path = ("lines", line_name, "stations", st_name)
            issues += _check_station(_mapping(st), path, root, plcs, used)
    return issues


def _check_models(models: dict[str, Any], base_dir: Path) -> list[Issue]:
    issues: list[Issue] = []
    for name, model in models.items():
        p = _mapping(model).get("path")
        if not isinstance(p, str):
            continue
        folder = (base_dir / p).resolve()
        if not folder.is_dir():
            issues.append((("models", name, "path"), f"model folder {folder} does not exist"))
        elif not (folder / "model.onnx").is_file():
            issues.append((("models", name, "path"), f"no model.onnx in {folder}"))
    return issues


def _ref(st: dict[str, Any], key: str, root: dict[str, Any], section: str,
         path: tuple[str | int, ...]) -> list[Issue]:
    name = st.get(key)
    known = _mapping(root.get(section))
    if name is None or not isinstance(name, str) or name in known:
        return []
    choices = ", ".join(sorted(known)) or "none defined"
    return [((*path, key), f"unknown {section[:-1]} {name!r} (known {section}: {choices})")]


def _check_station(st: dict[str, Any], path: tuple[str | int, ...], root: dict[str, Any],
                   plcs: dict[str, Any], used: dict[tuple[str, str], tuple[str | int, ...]]
                   ) -> list[Issue]:
    issues = _ref(st, "camera", root, "cameras", path) + _ref(st, "model", root, "models", path)
    issues += _ref(st, "shadow", root, "models", path)
    issues += _ref(st, "plc", root, "plcs", path)
    sinks = _mapping(root.get("sinks"))
    for i, sink in enumerate(st.get("sinks") or []):
        if isinstance(sink, str) and sink not in sinks:
            choices = ", ".join(sorted(sinks)) or "none defined"
            issues.append(((*path, "sinks", i), f"unknown sink {sink!r} (known sinks: {choices})"))
    signals = _mapping(st.get("signals"))
    plc_name = st.get("plc")
    plc_name = plc_name if isinstance(plc_name, str) else ""
    plc = _mapping(plcs.get(plc_name))
    if signals and not plc_name:
        issues.append(((*path, "signals"), "signals are mapped but the station names no plc"))
    for sig, addr in signals.items():
        if isinstance(addr, str) and plc:
            issues += _check_address(plc, plc_name, addr, (*path, "signals", sig),
                                     write=sig in WRITE_SIGNALS, used=used)
    if st.get("mode") == "triggered":
        missing = [s for s in TRIGGER_SIGNALS if not signals.get(s)]
        if missing:
            issues.append(((*path, "signals"), f"triggered mode needs signals: {', '.join(missing)}"))
    return issues


def _check_plc_heartbeats(plcs: dict[str, Any], used: dict[tuple[str, str], tuple[str | int, ...]]
                          ) -> list[Issue]:
    issues: list[Issue] = []
    for name, plc in plcs.items():
        plc = _mapping(plc)
        hb = _mapping(plc.get("heartbeat"))
        for key in ("counter", "status"):
            if isinstance(hb.get(key), str):
                issues += _check_address(plc, name, hb[key], ("plcs", name, "heartbeat", key),
                                         write=True, used=used)
        if isinstance(plc.get("reset"), str):
            issues += _check_address(plc, name, plc["reset"], ("plcs", name, "reset"),
                                     write=False, used=used)
    return issues


def _check_address(plc: dict[str, Any], plc_name: str, addr: str, path: tuple[str | int, ...],
                   write: bool, used: dict[tuple[str, str], tuple[str | int, ...]]) -> list[Issue]:
    kind = plc.get("type")
    if kind == "modbus":
        try:
            parsed = parse_modbus_address(addr)
        except ValueError as exc:
            return [(path, str(exc))]
        if write and not parsed.writable:
            return [(path, f"{addr!r} is read-only ({parsed.table}); the agent writes this signal: use coil or hr")]
        cells = [f"{t}:{i}" for t, i in parsed.cells()]
    elif kind == "opcua":
        if not _NODE_ID.match(addr):
            return [(path, f"bad OPC UA node id {addr!r}: expected e.g. ns=2;s=Line1.Stop or ns=2;i=1001")]
        cells = [addr]
    elif kind == "mqtt":
        if not addr or any(c in addr for c in "#+\x00") or addr.startswith("$"):
            return [(path, f"bad MQTT topic {addr!r}: a topic to publish to, without wildcards "
                           "(+, #) and not starting with $")]
        cells = [addr]
    else:
        return []
    if not write:
        return []
    for cell in cells:
        other = used.get((plc_name, cell))
        if other is not None:
            where = ".".join(str(p) for p in other)
            return [(path, f"PLC address {addr!r} on plc {plc_name!r} is already written by {where}")]
    for cell in cells:
        used[(plc_name, cell)] = path
    return []


def to_issues(found: list[Issue], line_of: Any) -> list[ConfigIssue]:
    return [ConfigIssue(line_of(p), ".".join(str(x) for x in p), msg) for p, msg in found]
