"""A Modbus TCP server in its own process that records every write and can answer
exceptions, for tests of the command path against a real peer.

    python -m tests.support.modbus_peer --port P [--busy 6,11] [--refuse 2]

100 coils and 100 holding registers at device id 1. Every write request prints one
JSON line on stdout: {"fc": 5|15|6|16, "address": a, "values": [...], "t": monotonic}
(CLOCK_MONOTONIC is one clock for all processes of the machine). `--busy` answers
the first coil writes with those exception codes, one each, then accepts;
`--refuse` answers every write with that code. `ModbusPeer` runs it from a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.server import ModbusTcpServer

from tests.support.peer_process import RecordingPeer

_TABLE = {1: "coil", 5: "coil", 15: "coil", 3: "hr", 6: "hr", 16: "hr"}


class RecordingContext(ModbusServerContext):
    def __init__(self, busy: list[int], refuse: int | None) -> None:  # no super(): own storage
        self.simdevices = []
        self.old_simulator = True  # pymodbus then calls async_getValues/async_setValues
        self.cells: dict[tuple[str, int], int] = {}
        self.busy, self.refuse = busy, refuse

    def device_ids(self) -> list[int]:
        return [1]

    async def async_getValues(  # type: ignore[override]
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        table = _TABLE.get(func_code)
        if table is None or address + count > 100:
            return ExcCodes.ILLEGAL_ADDRESS
        vals = [self.cells.get((table, address + i), 0) for i in range(count)]
        return [bool(v) for v in vals] if table == "coil" else vals

    async def async_setValues(  # type: ignore[override]
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        table = _TABLE.get(func_code, "hr")
        if self.refuse is not None:
            return ExcCodes(self.refuse)
        if table == "coil" and self.busy:
            return ExcCodes(self.busy.pop(0))
        if address + len(values) > 100:
            return ExcCodes.ILLEGAL_ADDRESS
        for i, v in enumerate(values):
            self.cells[(table, address + i)] = int(v)
        print(json.dumps({"fc": func_code, "address": address, "values": [int(v) for v in values],
                          "t": time.monotonic()}), flush=True)
        return None


async def serve(args: argparse.Namespace) -> None:
    busy = [int(c) for c in args.busy.split(",")] if args.busy else []
    server = ModbusTcpServer(RecordingContext(busy, args.refuse), address=("127.0.0.1", args.port))
    await server.serve_forever(background=True)
    print("READY", flush=True)
    await asyncio.Event().wait()


class ModbusPeer(RecordingPeer):
    """Run the peer as a subprocess; `writes` fills in as it reports them."""

    module = "tests.support.modbus_peer"

    def coil_writes(self, coil: int) -> list[tuple[int, float]]:
        """(value, time) of every write of `coil`, in order."""
        return [(w["values"][0], w["t"]) for w in self.writes
                if w["fc"] in (5, 15) and w["address"] == coil]


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--busy", default="", help="exception codes for the first coil writes")
    p.add_argument("--refuse", type=int, default=None, help="exception code for every write")
    asyncio.run(serve(p.parse_args()))
