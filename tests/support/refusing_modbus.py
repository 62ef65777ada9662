"""A Modbus TCP server (pymodbus, run as its own process) that refuses writes.

    python -m tests.support.refusing_modbus --port P --code 4 [--registers 0,1]

Every write (coils and holding registers; only to the given holding registers with
--registers) is answered with Modbus exception `--code`; reads are answered. SIGUSR1
toggles the refusal, so a test can let the PLC recover. It prints "ready" once
listening.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

_WRITES = {5, 6, 15, 16, 22, 23}  # function codes that write


async def serve(port: int, code: int, registers: set[int] | None) -> None:
    refusing = [True]

    async def action(function_code: int, start_address: int, address: int, count: int,
                     current: list[int], values: list[int] | list[bool] | None
                     ) -> ExcCodes | None:
        if not refusing[0] or function_code not in _WRITES:
            return None
        if registers is not None and (function_code in (5, 15)
                                      or not registers & set(range(address, address + count))):
            return None
        return ExcCodes(code)

    device = SimDevice(id=1, action=action, simdata=(
        [SimData(0, count=128, values=False, datatype=DataType.BITS)],
        [SimData(0, count=16, values=False, datatype=DataType.BITS)],
        [SimData(0, count=100, values=0, datatype=DataType.REGISTERS)],
        [SimData(0, count=16, values=0, datatype=DataType.REGISTERS)],
    ))
    server = ModbusTcpServer(device, address=("127.0.0.1", port))
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: refusing.__setitem__(0, not refusing[0]))
    await server.serve_forever(background=True)
    print("ready", flush=True)
    await done.wait()
    await server.shutdown()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--code", type=int, default=2)
    p.add_argument("--registers", help="comma-separated holding registers to refuse (default: all writes)")
    a = p.parse_args()
    regs = {int(r) for r in a.registers.split(",")} if a.registers else None
    asyncio.run(serve(a.port, a.code, regs))


if __name__ == "__main__":
    main()
