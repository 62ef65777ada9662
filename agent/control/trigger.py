"""TriggerHandshake: the smart-camera handshake for one triggered station.

PLC raises `trigger` with `part_id` -> agent reads part id, sets `busy`,
inspects a frame captured after the trigger, writes `result` (1 OK, 2 NG,
3 UNKNOWN), `result_code`, `result_part_id`, sets `done`, clears `busy` ->
PLC clears `trigger` -> agent clears `done`. The trigger is polled every
`poll_ms`. Every step's timeout and failure is logged and counted.

With a camera trigger (agent/capture/camera_trigger.py) `arm` runs first, as soon as
the trigger is seen (software: it fires TriggerSoftware), and the time it returns
replaces the trigger time: the part is judged on a frame captured after it. An arm
that fails answers UNKNOWN.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent.config.station import StationSignals, TriggerTimeouts
from agent.logutil import RepeatLimiter
from agent.protocols.link import PlcError, PlcLink
from agent.tasks import Loop
from agent.types import Result, Verdict

log = logging.getLogger(__name__)
RESULT_CODE = {Result.OK: 1, Result.NG: 2, Result.UNKNOWN: 3}
Inspect = Callable[[str, float], Awaitable[Verdict]]
Arm = Callable[[float], Awaitable[float]]


@dataclass
class TriggerStats:
    triggers: int = 0
    completed: int = 0
    ok: int = 0
    ng: int = 0
    unknown: int = 0
    inspect_timeouts: int = 0  # no verdict within timeouts.frame_ms: answered UNKNOWN
    inspect_errors: int = 0
    camera_trigger_errors: int = 0  # the camera trigger could not be fired: answered UNKNOWN
    clear_timeouts: int = 0  # the PLC did not clear the trigger within timeouts.clear_ms
    plc_errors: int = 0  # a read or write of a handshake signal failed
    last_part_id: str | None = None
    last_cycle_ms: float | None = None


class HandshakeStep(Exception):
    """One step failed; message names the step and signal."""


class TriggerHandshake(Loop[TriggerStats]):
    def __init__(
        self,
        link: PlcLink,
        line: str,
        station: str,
        signals: StationSignals,
        timeouts: TriggerTimeouts,
        inspect: Inspect,
        poll_ms: int,
        *,
        request_timeout: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        arm: Arm | None = None,
    ) -> None:
        missing = [s for s in ("trigger", "busy", "done", "result") if getattr(signals, s) is None]
        if missing:
            raise ValueError(f"station {line}/{station}: triggered mode needs signals {missing}")
        super().__init__(f"trigger-{line}-{station}", TriggerStats())
        self.link = link
        self.line = line
        self.station = station
        self.signals = signals
        self.timeouts = timeouts
        self.inspect = inspect
        self.arm = arm
        self.poll_s = poll_ms / 1000
        self.request_timeout = request_timeout
        self.clock = clock
        self._awaiting_clear = False  # done is set; waiting for the PLC to drop the trigger
        self._limiter = RepeatLimiter(log, f"trigger {line}/{station}")

    # -- loop -----------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
                self._limiter.recovered()
            except (PlcError, HandshakeStep) as exc:
                self._stats.plc_errors += 1
                self._limiter.failure("%s", exc)
            await asyncio.sleep(self.poll_s)

    async def poll(self) -> None:
        """One poll: finish a handshake whose trigger was not cleared in time, or start one."""
        trigger = await self._read_bool("trigger")
        if self._awaiting_clear:
            if not trigger:  # the PLC cleared it late: finish the old handshake, no new part
                await self._write("done", False)
                self._awaiting_clear = False
                self._stats.completed += 1
            return
        if trigger:
            await self.cycle()

    async def cycle(self) -> None:
        """One part: the trigger is high now."""
        t_trigger = self.clock()
        self._stats.triggers += 1
        t_frames = await self._arm(t_trigger)
        part_id = await self._read_part_id()
        await self._write("busy", True)
        if t_frames is None:
            verdict_result, code = Result.UNKNOWN, 0
        else:
            verdict_result, code = await self._inspect(part_id, t_frames)
        await self._write_result(part_id, verdict_result, code)
        await self._write("done", True)
        await self._write("busy", False)
        self._stats.last_cycle_ms = (self.clock() - t_trigger) * 1000
        self._awaiting_clear = True
        await self._wait_trigger_cleared()
        await self._write("done", False)
        self._awaiting_clear = False
        self._stats.completed += 1

    # -- steps ----------------------------------------------------------------------
    async def _read_part_id(self) -> str:
        if self.signals.part_id is None:
            return str(self._stats.triggers)
        value = await self.link.read(self.signals.part_id, self.request_timeout)
        part_id = str(int(value)) if not isinstance(value, float) else str(value)
        self._stats.last_part_id = part_id
        return part_id

    async def _arm(self, t_trigger: float) -> float | None:
        """The camera trigger: frames after the returned time; None when it failed."""
        if self.arm is None:
            return t_trigger
        try:
            return await asyncio.wait_for(self.arm(t_trigger), self.timeouts.frame_ms / 1000)
        except Exception as exc:  # noqa: BLE001 - the PLC must still get an answer
            self._stats.camera_trigger_errors += 1
            log.warning("trigger %s/%s: camera trigger failed, the part is UNKNOWN: %s",
                        self.line, self.station, exc or type(exc).__name__)
            return None

    async def _inspect(self, part_id: str, t_trigger: float) -> tuple[Result, int]:
        # The daemon's inspect answers UNKNOWN itself when no frame comes within frame_ms;
        # this guard only catches a hung inspection (frame wait + inference + margin).
        limit = 2 * self.timeouts.frame_ms / 1000 + 0.5
        try:
            verdict = await asyncio.wait_for(self.inspect(part_id, t_trigger), limit)
        except TimeoutError:
            self._stats.inspect_timeouts += 1
            log.warning("trigger %s/%s part %s: no verdict within %.0f ms: UNKNOWN", self.line,
                        self.station, part_id, limit * 1000)
            return Result.UNKNOWN, 0
        except Exception:  # noqa: BLE001 - the PLC must still get an answer
            self._stats.inspect_errors += 1
            log.exception("trigger %s/%s part %s: inspection failed: UNKNOWN", self.line,
                          self.station, part_id)
            return Result.UNKNOWN, 0
        return verdict.result, verdict.defect_code

    async def _write_result(self, part_id: str, result: Result, code: int) -> None:
        counter = {Result.OK: "ok", Result.NG: "ng", Result.UNKNOWN: "unknown"}[result]
        setattr(self._stats, counter, getattr(self._stats, counter) + 1)
        await self._write("result", RESULT_CODE[result])
        if self.signals.result_code:
            await self._write("result_code", code)
        if self.signals.result_part_id and part_id.isdigit():
            await self._write("result_part_id", int(part_id))

    async def _wait_trigger_cleared(self) -> None:
        deadline = self.clock() + self.timeouts.clear_ms / 1000
        while await self._read_bool("trigger"):
            if self.clock() >= deadline:
                self._stats.clear_timeouts += 1
                raise HandshakeStep(
                    f"PLC did not clear trigger ({self.signals.trigger}) within "
                    f"{self.timeouts.clear_ms} ms after done; done stays set until it does, "
                    "and no new part is inspected before that")
            await asyncio.sleep(self.poll_s)

    async def _read_bool(self, signal: str) -> bool:
        address = getattr(self.signals, signal)
        return bool(await self.link.read(address, self.request_timeout))

    async def _write(self, signal: str, value: int | bool) -> None:
        address = getattr(self.signals, signal)
        try:
            await self.link.write(address, value, self.request_timeout)
        except PlcError as exc:
            raise HandshakeStep(f"writing {signal} ({address}) failed: {exc}") from exc
