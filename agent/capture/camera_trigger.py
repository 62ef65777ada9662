"""Camera triggers in triggered mode: which frames belong to a PLC trigger.

`camera_arm(source)` gives the TriggerHandshake a coroutine run the moment the PLC's
trigger is seen; it returns the monotonic time after which a captured frame belongs
to this part (the station then inspects the first frame captured after it):

- free-run (every non-GenICam source too): no arm, the frame captured after the trigger;
- software: fire TriggerSoftware; the frame it produced is the first stamped after the
  fire (camera timestamps mapped to host time, genicam/clock.py), never an older buffer;
- hardware: the camera was triggered on a line by the same signal, maybe before the
  agent polled the PLC: a frame exposed up to `trigger_window_ms` before still counts.
  No frame in the window within `trigger.frame_ms` -> UNKNOWN.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Arm = Callable[[float], Awaitable[float]]


def trigger_mode(source: Any) -> str:
    return str(getattr(getattr(source, "cfg", None), "trigger", "free-run"))


def camera_arm(source: Any) -> Arm | None:
    """The arm coroutine for `source`'s trigger mode, or None for free-run."""
    mode = trigger_mode(source)
    if mode == "software":
        async def fire(_t_trigger: float) -> float:
            return float(await asyncio.to_thread(source.fire))
        return fire
    if mode == "hardware":
        window = source.cfg.trigger_window_ms / 1000

        async def window_start(t_trigger: float) -> float:
            return t_trigger - window
        return window_start
    return None
