"""At start: once the PLC is first reached, check every mapped signal of the stations
on it (address exists, type fits) and log each bad one by name, so a missing node
or an out-of-range address is reported before the first stop needs it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from agent.config.station import StationSignals
from agent.protocols.link import PlcLink
from agent.protocols.probe import check_signal

log = logging.getLogger(__name__)


async def verify_when_connected(
    link: PlcLink, signals: Mapping[tuple[str, str], StationSignals], timeout: float,
    bad: dict[str, str], poll_s: float = 0.05,
) -> None:
    """Wait for the link, then fill `bad` with {"line/station signal": reason}."""
    while str(link.state) != "connected":
        await asyncio.sleep(poll_s)
    for (line, station), sig in signals.items():
        for name, address in sig.model_dump().items():
            if address is None:
                continue
            label = f"{line}/{station} {name}"
            row = await check_signal(link, label, name, address, timeout)
            if not row.ok:
                bad[label] = f"{address}: {row.detail}"
                log.error("plc %s: signal %s (%s) is unusable: %s", link.name, label, address,
                          row.detail)
