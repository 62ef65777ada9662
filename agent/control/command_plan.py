"""Which signal writes a command means (pure): data first, then the strobe bit.

A PLC that latches `defect_code` on the rising edge of `reject` or `stop_request`
must find the new code already there, so the data (`defect_code`, `defect_count`,
`last_event_seq`) goes out before the bit, in one request where the protocol allows
(one Modbus FC16 for registers that follow each other, one OPC UA Write).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.config.station import StationSignals
from agent.types import Command, CommandKind

METHOD = "stop_method"


@dataclass(frozen=True)
class Write:
    signal: str
    address: str
    value: int | bool


@dataclass(frozen=True)
class Plan:
    """`data` before the `strobe` (whose acknowledgement times the command), `after` last."""

    strobe: Write
    data: list[Write] = field(default_factory=list)
    after: list[Write] = field(default_factory=list)


def plan_writes(cmd: Command, sig: StationSignals, count: int, seq: int,
                stop_method: tuple[str, str] | None = None) -> Plan | None:
    """The writes of `cmd`, or None when its signal is not mapped.

    STOP: data, then stop_request=1 (or, with an OPC UA `stop_method`, a call of it with
    the defect code). REJECT: data, then reject=1 (the pulse is ended by the dispatcher).
    ALARM: alarm=1. RESET: stop_request=0, then alarm=0.
    """
    data = _mapped([("defect_code", sig.defect_code, cmd.defect_code),
                    ("defect_count", sig.defect_count, count),
                    ("last_event_seq", sig.last_event_seq, seq)])
    if cmd.kind is CommandKind.STOP and stop_method is not None:
        return Plan(Write(METHOD, f"{stop_method[0]}|{stop_method[1]}", cmd.defect_code), data)
    if cmd.kind is CommandKind.STOP:
        return _plan(_mapped([("stop_request", sig.stop_request, True)]), data)
    if cmd.kind is CommandKind.REJECT:
        return _plan(_mapped([("reject", sig.reject, True)]), data)
    if cmd.kind is CommandKind.ALARM:
        return _plan(_mapped([("alarm", sig.alarm, True)]))
    return _plan(_mapped([("stop_request", sig.stop_request, False), ("alarm", sig.alarm, False)]))


def _plan(bits: list[Write], data: list[Write] | None = None) -> Plan | None:
    if not bits:
        return None
    return Plan(bits[0], data or [], bits[1:])


def _mapped(items: list[tuple[str, str | None, int | bool]]) -> list[Write]:
    return [Write(name, addr, value) for name, addr, value in items if addr is not None]
