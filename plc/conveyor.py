"""The soft PLC's program: conveyor, stop latch, heartbeat watchdog, trigger handshake.

Pure logic over PlcState, driven by `tick(now)`; the same behaviour the IEC
61131-3 code in plc/iec61131/ implements for a real PLC.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

from plc.state import PlcState

log = logging.getLogger(__name__)


class Phase(enum.Enum):
    IDLE = "idle"
    WAIT_DONE = "wait_done"  # trigger raised, waiting for the agent's done
    WAIT_CLEAR = "wait_clear"  # trigger cleared, waiting for the agent to clear done


@dataclass
class HandshakeResult:
    part_id: int  # the part id the PLC raised
    echoed_part_id: int  # result_part_id the agent wrote
    result: int  # 1 OK, 2 NG, 3 UNKNOWN
    result_code: int


@dataclass
class StationSim:
    key: str
    latched: bool = False
    last_stop: bool = False  # stop_request at the previous scan (the latch sets on its rising edge)
    phase: Phase = Phase.IDLE
    phase_since: float = 0.0
    part_id: int = 0
    rejects: int = 0
    last_reject: bool = False
    results: list[HandshakeResult] = field(default_factory=list)
    handshake_timeouts: int = 0
    missed_parts: int = 0  # a part arrived while the previous handshake was still open


@dataclass
class ConveyorSettings:
    part_period_s: float = 1.0
    watchdog_ms: int = 1500
    triggered: bool = False
    done_timeout_s: float = 2.0
    reset_pulse_s: float = 0.5


class Conveyor:
    def __init__(self, state: PlcState, settings: ConveyorSettings) -> None:
        self.state = state
        self.settings = settings
        self.stations = {s: StationSim(s) for s in state.tags.stations}
        self.watchdog_tripped = False
        self._hb_last: object = None
        self._hb_changed = 0.0
        self._hb_armed = False
        self._next_part: float | None = None
        self._reset_until: float | None = None

    @property
    def running(self) -> bool:
        return not self.watchdog_tripped and not any(s.latched for s in self.stations.values())

    def tick(self, now: float) -> None:
        for st in self.stations.values():
            self._stop_latch(st)
            self._reject_edge(st)
        self._watchdog(now)
        self.state.set("plant.conveyor_running", self.running)
        self.state.set("plant.watchdog_tripped", self.watchdog_tripped)
        self._parts(now)
        for st in self.stations.values():
            self._handshake(st, now)
        if self._reset_until is not None and now >= self._reset_until:
            self.state.set("agent.reset", False)
            self._reset_until = None

    def press_reset(self, now: float) -> None:
        """Operator reset: clears stop latches and the watchdog, pulses `reset`."""
        for st in self.stations.values():
            st.latched = False
        self.watchdog_tripped = False
        self._hb_changed = now  # a fresh watchdog window
        self.state.set("agent.reset", True)
        self._reset_until = now + self.settings.reset_pulse_s
        log.info("soft PLC: operator reset")

    # -- program parts --------------------------------------------------------------
    def _stop_latch(self, st: StationSim) -> None:
        # rising edge, as a real PLC latch: after an operator reset a stop_request the agent has
        # not cleared yet must not latch again; only a new stop (0 -> 1) does
        now_on = bool(self.state.get(f"{st.key}.stop_request"))
        rising, st.last_stop = now_on and not st.last_stop, now_on
        if rising and not st.latched:
            st.latched = True
            code = self.state.get(f"{st.key}.defect_code")
            log.warning("soft PLC: %s stop latched (defect code %s)", st.key, code)

    def _reject_edge(self, st: StationSim) -> None:
        now_on = bool(self.state.get(f"{st.key}.reject"))
        if now_on and not st.last_reject:
            st.rejects += 1
        st.last_reject = now_on

    def _watchdog(self, now: float) -> None:
        hb = self.state.get("agent.heartbeat")
        if hb != self._hb_last:
            self._hb_armed = self._hb_last is not None or self._hb_armed
            self._hb_last = hb
            self._hb_changed = now
            return
        stale_ms = (now - self._hb_changed) * 1000
        if self._hb_armed and not self.watchdog_tripped and stale_ms > self.settings.watchdog_ms:
            self.watchdog_tripped = True
            log.warning("soft PLC: heartbeat stale for %.0f ms: watchdog tripped", stale_ms)

    def _parts(self, now: float) -> None:
        if not self.running:
            self._next_part = None
            return
        if self._next_part is None:
            self._next_part = now + self.settings.part_period_s
            return
        if now < self._next_part:
            return
        self._next_part += self.settings.part_period_s
        count = int(self.state.get("plant.parts_count")) + 1
        self.state.set("plant.parts_count", count)
        if self.settings.triggered:
            for st in self.stations.values():
                self._raise_trigger(st, count, now)

    def _raise_trigger(self, st: StationSim, part_id: int, now: float) -> None:
        if st.phase is not Phase.IDLE:
            st.missed_parts += 1
            return
        st.part_id = part_id
        self.state.set(f"{st.key}.part_id", part_id)
        self.state.set(f"{st.key}.trigger", True)
        st.phase, st.phase_since = Phase.WAIT_DONE, now

    def _handshake(self, st: StationSim, now: float) -> None:
        if st.phase is Phase.WAIT_DONE:
            if self.state.get(f"{st.key}.done"):
                st.results.append(self._result(st))
                self.state.set(f"{st.key}.trigger", False)
                st.phase, st.phase_since = Phase.WAIT_CLEAR, now
            elif now - st.phase_since > self.settings.done_timeout_s:
                st.handshake_timeouts += 1
                log.warning("soft PLC: %s part %s: no done within %.1f s", st.key, st.part_id,
                            self.settings.done_timeout_s)
                self.state.set(f"{st.key}.trigger", False)
                st.phase, st.phase_since = Phase.WAIT_CLEAR, now
        elif st.phase is Phase.WAIT_CLEAR and not self.state.get(f"{st.key}.done"):
            st.phase = Phase.IDLE

    def _result(self, st: StationSim) -> HandshakeResult:
        g = self.state.get
        return HandshakeResult(st.part_id, int(g(f"{st.key}.result_part_id")),
                               int(g(f"{st.key}.result")), int(g(f"{st.key}.result_code")))

    def describe(self) -> str:
        g = self.state.get
        parts = [f"conveyor={'RUN' if self.running else 'STOP'}",
                 f"parts={g('plant.parts_count')}",
                 f"watchdog={'TRIPPED' if self.watchdog_tripped else 'ok'}",
                 f"hb={g('agent.heartbeat')}", f"status=0b{int(g('agent.status')):04b}"]
        for st in self.stations.values():
            parts.append(f"{st.key}: latched={int(st.latched)} rejects={st.rejects} "
                         f"code={g(f'{st.key}.defect_code')} count={g(f'{st.key}.defect_count')}"
                         f" results={len(st.results)}")
        return " ".join(parts)
