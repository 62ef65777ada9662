"""Which signal writes a command means (pure): the primary write first, then extras."""

from __future__ import annotations

from dataclasses import dataclass

from agent.config.station import StationSignals
from agent.types import Command, CommandKind

METHOD = "stop_method"


@dataclass(frozen=True)
class Write:
    signal: str
    address: str
    value: int | bool


def plan_writes(cmd: Command, sig: StationSignals, count: int, seq: int,
                stop_method: tuple[str, str] | None = None) -> list[Write]:
    """Writes for `cmd`; the first is the one whose acknowledgement times the command.

    STOP: stop_request=1, REJECT: reject=1 (pulse ended by the dispatcher), then
    defect_code, defect_count, last_event_seq where mapped. ALARM: alarm=1.
    RESET: stop_request=0 and alarm=0. With an OPC UA `stop_method`, STOP calls it
    (argument: defect code) instead of writing stop_request.
    """
    if cmd.kind is CommandKind.STOP and stop_method is not None:
        call = Write(METHOD, f"{stop_method[0]}|{stop_method[1]}", cmd.defect_code)
        return [call] + _mapped([("defect_count", sig.defect_count, count),
                                 ("last_event_seq", sig.last_event_seq, seq)])
    if cmd.kind is CommandKind.STOP:
        return _mapped([("stop_request", sig.stop_request, True)]) + _defect(cmd, sig, count, seq)
    if cmd.kind is CommandKind.REJECT:
        return _mapped([("reject", sig.reject, True)]) + _defect(cmd, sig, count, seq)
    if cmd.kind is CommandKind.ALARM:
        return _mapped([("alarm", sig.alarm, True)])
    return _mapped([("stop_request", sig.stop_request, False), ("alarm", sig.alarm, False)])


def _defect(cmd: Command, sig: StationSignals, count: int, seq: int) -> list[Write]:
    primary_missing = (sig.stop_request if cmd.kind is CommandKind.STOP else sig.reject) is None
    if primary_missing:
        return []
    return _mapped([
        ("defect_code", sig.defect_code, cmd.defect_code),
        ("defect_count", sig.defect_count, count),
        ("last_event_seq", sig.last_event_seq, seq),
    ])


def _mapped(items: list[tuple[str, str | None, int | bool]]) -> list[Write]:
    return [Write(name, addr, value) for name, addr, value in items if addr is not None]
