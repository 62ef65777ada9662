"""Logging helpers: repeated errors log once, then at debug until recovery."""

from __future__ import annotations

import logging


class RepeatLimiter:
    """Log the first occurrence of a failure at `level`, repeats at DEBUG, and the
    recovery once at INFO (Home Assistant's Modbus hub does the same).

        lim = RepeatLimiter(log, "plc softplc")
        lim.failure("connect failed: %s", exc)   # WARNING once, then DEBUG
        lim.recovered("connected")               # INFO once, only after a failure
    """

    def __init__(self, logger: logging.Logger, what: str, level: int = logging.WARNING) -> None:
        self.logger = logger
        self.what = what
        self.level = level
        self.failures = 0

    def failure(self, msg: str, *args: object) -> None:
        self.failures += 1
        if self.failures == 1:
            self.logger.log(self.level, f"{self.what}: {msg}", *args)
        else:
            self.logger.debug(f"{self.what}: {msg} (repeat {self.failures})", *args)

    def recovered(self, msg: str = "recovered", *args: object) -> None:
        if self.failures:
            self.logger.info(f"{self.what}: {msg} after {self.failures} failure(s)", *args)
        self.failures = 0
