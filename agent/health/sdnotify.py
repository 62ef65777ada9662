"""sd_notify(3) over a Unix datagram socket: READY=1, RELOADING=1, WATCHDOG=1, STATUS=,
STOPPING=1.

The protocol is one datagram of newline-separated KEY=VALUE pairs sent to the socket
named by $NOTIFY_SOCKET (a path, or an abstract name when it starts with '@'). Without
$NOTIFY_SOCKET (not run by systemd, or not Type=notify) every call is a no-op.
$WATCHDOG_USEC (with $WATCHDOG_PID, when set, naming this process) enables the
watchdog; systemd recommends pinging at half the interval, which `watchdog_interval_s`
holds. `StatusLine` keeps STATUS= current without flooding the manager.

A reload (SIGHUP) is `RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC in µs, as
systemd asks since v253, so it can tell this reload from an earlier one), then
`READY=1` once the reload is over, applied or refused.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agent.logutil import RepeatLimiter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SdNotifyStats:
    sent: int
    failed: int
    watchdog_pings: int


def _socket_address(name: str) -> str | bytes:
    if name.startswith("@"):
        return b"\0" + name[1:].encode()  # abstract namespace socket
    return name


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # the watchdog is meant for another process
    return int(usec) / 2_000_000  # half of it, in seconds


class SdNotifier:
    """Tell the service manager about start-up, liveness and status; no-op outside systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        name = env.get("NOTIFY_SOCKET", "")
        self._address = _socket_address(name) if name else None
        self.watchdog_interval_s: float | None = _watchdog_interval(env) if name else None
        self._limiter = RepeatLimiter(log, f"sd_notify {name or '(off)'}")
        self._sent = self._failed = self._pings = 0

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def ready(self) -> None:
        self._send("READY=1")

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def watchdog(self) -> None:
        if self._send("WATCHDOG=1"):
            self._pings += 1

    def status(self, text: str) -> None:
        self._send("STATUS=" + " ".join(text.split()))  # one line, as systemctl shows it

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def stats(self) -> SdNotifyStats:
        return SdNotifyStats(sent=self._sent, failed=self._failed, watchdog_pings=self._pings)

    def _send(self, message: str) -> bool:
        if self._address is None:
            return False
        # non-blocking: a service manager that does not read must never stall the event
        # loop (a full socket buffer fails this send, counted, instead of blocking)
        kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
        try:
            with socket.socket(socket.AF_UNIX, kind) as sock:
                sock.sendto(message.encode(), self._address)
        except OSError as exc:
            self._failed += 1
            self._limiter.failure("cannot send %s: %s", message.split("=", 1)[0], exc)
            return False
        self._sent += 1
        self._limiter.recovered()
        return True


_NUMBER = re.compile(r"\b\d+(\.\d+)?\b")


class StatusLine:
    """STATUS= as `systemctl status` shows it, kept current.

    Call `update(text)` as often as the state is looked at: a change in the words
    (a check failing or recovering, a station paused, stopping) is sent at once; a
    change only in the numbers (counters) at most every `refresh_s`. An unchanged
    text is not sent again.
    """

    def __init__(self, notifier: SdNotifier, refresh_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._notifier = notifier
        self._refresh_s = refresh_s
        self._clock = clock
        self._sent: str | None = None
        self._sent_at = 0.0

    def update(self, text: str) -> bool:
        """Send `text` when due; True when it was sent."""
        text = " ".join(text.split())
        if text == self._sent:
            return False
        now = self._clock()
        words_changed = self._sent is None or _NUMBER.sub("#", text) != _NUMBER.sub("#", self._sent)
        if not words_changed and now - self._sent_at < self._refresh_s:
            return False
        self._notifier.status(text)
        self._sent, self._sent_at = text, now
        return True
