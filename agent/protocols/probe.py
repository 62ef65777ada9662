"""Commissioning checks of PLC signals, without actuating: every mapped address or
node exists, has a type that fits the signal, and reads back."""

from __future__ import annotations

from dataclasses import dataclass

from agent.protocols.link import PlcError, PlcLink, PlcRejected


@dataclass(frozen=True)
class ProbeRow:
    target: str  # PLC or sink name
    signal: str  # "line1/station1 stop_request", "heartbeat", "connect"
    address: str
    ok: bool
    detail: str


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
        detail = await link.probe_signal(signal, address, timeout)
    except PlcRejected as exc:
        return ProbeRow(link.name, label, address, False, exc.reason)
    except (PlcError, ValueError) as exc:
        return ProbeRow(link.name, label, address, False, str(exc))
    return ProbeRow(link.name, label, address, True, detail)
