"""Commissioning checks of PLC signals, without actuating: every mapped address or
node exists, has a type that fits the signal, and reads back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.config.models import AgentConfig
from agent.config.station import StationSignals
from agent.control.plc_link import PlcError, PlcLink, PlcRejected
from agent.sinks.modbus_link import ModbusLink

if TYPE_CHECKING:  # asyncua costs ~40 MB of RSS: imported only where OPC UA is used
    from agent.sinks.opcua_link import OpcUaLink

BIT_SIGNALS = {"stop_request", "reject", "alarm", "trigger", "busy", "done", "reset"}
AGENT_WRITES = {"stop_request", "reject", "alarm", "defect_code", "defect_count", "last_event_seq",
                "busy", "done", "result", "result_code", "result_part_id", "heartbeat", "status"}


@dataclass(frozen=True)
class ProbeRow:
    target: str  # PLC or sink name
    signal: str  # "line1/station1 stop_request", "heartbeat", "connect"
    address: str
    ok: bool
    detail: str


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


async def probe_link(link: PlcLink, signals: list[tuple[str, str, str]], connect_timeout: float,
                     timeout: float) -> list[ProbeRow]:
    """Connect (the link must be started) and check every signal; one row each."""
    wait = getattr(link, "wait_connected", None)
    connected = bool(wait and await wait(connect_timeout))
    where = getattr(link, "where", "")
    if not connected:
        err = link.stats().last_error or f"not connected within {connect_timeout:.0f} s"
        rows = [ProbeRow(link.name, "connect", where, False, err)]
        return rows + [ProbeRow(link.name, label, addr, False, "not checked: PLC not connected")
                       for label, _, addr in signals]
    rows = [ProbeRow(link.name, "connect", where, True, "connected")]
    for label, signal, address in signals:
        rows.append(await check_signal(link, label, signal, address, timeout))
    return rows


async def check_signal(link: PlcLink, label: str, signal: str, address: str,
                       timeout: float) -> ProbeRow:
    try:
        if isinstance(link, ModbusLink):
            detail = await _check_modbus(link, signal, address, timeout)
        elif type(link).__name__ == "OpcUaLink":  # (no import of asyncua for the check)
            detail = await _check_opcua(link, signal, address, timeout)  # type: ignore[arg-type]
        elif hasattr(link, "probe_topic"):  # MQTT: subscribe, never publish (no actuation)
            detail = await link.probe_topic(address, timeout)
        else:
            detail = f"reads {await link.read(address, timeout)!r}"
    except PlcRejected as exc:
        return ProbeRow(link.name, label, address, False, exc.reason)
    except (PlcError, ValueError) as exc:
        return ProbeRow(link.name, label, address, False, str(exc))
    return ProbeRow(link.name, label, address, True, detail)


async def _check_modbus(link: ModbusLink, signal: str, address: str, timeout: float) -> str:
    addr = link.address(address)
    if signal in AGENT_WRITES and not addr.writable:
        raise PlcRejected(address, f"the agent writes {signal}, but {addr.table} is read-only")
    if signal in BIT_SIGNALS and addr.dtype not in ("bool", "u16", "i16"):
        raise PlcRejected(address, f"{signal} is a bit; {addr.dtype} does not fit")
    if signal not in BIT_SIGNALS and addr.dtype == "bool":
        raise PlcRejected(address, f"{signal} is a number; a {addr.table} holds one bit")
    value = await link.read(address, timeout)
    return f"{addr.dtype} reads {value!r}"


async def _check_opcua(link: OpcUaLink, signal: str, address: str, timeout: float) -> str:
    from asyncua import ua

    from agent.sinks.opcua_types import INT_RANGES

    vtype = await link.data_type(address, timeout)
    integer = vtype in INT_RANGES
    if signal in BIT_SIGNALS and not (vtype is ua.VariantType.Boolean or integer):
        raise PlcRejected(address, f"{signal} is a bit; node DataType {vtype.name} does not fit")
    if signal not in BIT_SIGNALS and not integer:
        raise PlcRejected(address, f"{signal} is an integer; node DataType {vtype.name} does not fit")
    value = await link.read(address, timeout)
    return f"{vtype.name} reads {value!r}"
