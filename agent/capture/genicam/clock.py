"""Device timestamps -> host monotonic time.

A camera stamps each frame with its own clock (Aravis hands it over in nanoseconds).
The offset to the host's monotonic clock is estimated as the smallest (host receive
time - device time) seen since the stream opened: the frame that travelled fastest
bounds the offset best, and a mapped time is never later than the host saw the frame.
The mapping only moves earlier, so the order of mapped times is the order of device
times. It restarts at each (re)open (a power-cycled camera restarts its clock).
"""

from __future__ import annotations


class DeviceClock:
    def __init__(self) -> None:
        self._offset: float | None = None

    def reset(self) -> None:
        self._offset = None

    def to_host(self, device_ns: int, host_received: float) -> float:
        """Monotonic host time of a frame stamped `device_ns`, received at `host_received`."""
        if device_ns <= 0:  # the camera does not stamp frames: the receive time is all we have
            return host_received
        sample = host_received - device_ns / 1e9
        if self._offset is None or sample < self._offset:
            self._offset = sample
        return device_ns / 1e9 + self._offset

    @property
    def offset(self) -> float | None:
        return self._offset
