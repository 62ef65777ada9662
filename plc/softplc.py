"""SoftPlc: the tag map served over Modbus TCP and OPC UA with one shared state,
plus the conveyor program ticking on the event loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from pymodbus.server import ModbusTcpServer

from agent.tasks import cancel_and_wait
from plc.conveyor import Conveyor, ConveyorSettings
from plc.modbus_server import start_modbus_server
from plc.opcua_server import OpcUaFace, ServerSecurity, build_opcua_face
from plc.state import PlcState
from plc.tags import TagMap

log = logging.getLogger(__name__)


class SoftPlc:
    def __init__(
        self,
        tags: TagMap,
        modbus_port: int | None = None,
        opcua_port: int | None = None,
        *,
        host: str = "127.0.0.1",
        settings: ConveyorSettings | None = None,
        opcua_security: ServerSecurity | None = None,
        quiet: bool = True,
        tick_s: float = 0.005,
        out: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tags = tags
        self.state = PlcState(tags)
        self.conveyor = Conveyor(self.state, settings or ConveyorSettings())
        self.host = host
        self.modbus_port = modbus_port
        self.opcua_port = opcua_port
        self.opcua_security = opcua_security
        self.quiet = quiet
        self.tick_s = tick_s
        self._out = out or _print
        self._clock = clock
        self._modbus: ModbusTcpServer | None = None
        self._opcua: OpcUaFace | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_line = ""

    @property
    def opcua_endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.opcua_port}/edge-agent/softplc"

    async def start(self) -> None:
        if self.opcua_port is not None:
            self._opcua = await build_opcua_face(self.state, self.opcua_endpoint, self.opcua_security)
            await self._opcua.start()
        if self.modbus_port is not None:
            self._modbus = await start_modbus_server(
                self.state, self.host, self.modbus_port, self.tags.modbus_device_id)
        self._task = asyncio.create_task(self._run(), name="softplc-program")
        self._emit(f"soft PLC up: modbus={self.modbus_port} opcua={self.opcua_port and self.opcua_endpoint}")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self._modbus is not None:
            await self._modbus.shutdown()
            self._modbus = None
        if self._opcua is not None:
            await self._opcua.stop()
            self._opcua = None

    def press_reset(self) -> None:
        self.conveyor.press_reset(self._clock())

    async def _run(self) -> None:
        while True:
            self.conveyor.tick(self._clock())
            self._print_state()
            await asyncio.sleep(self.tick_s)

    def _print_state(self) -> None:
        line = self.conveyor.describe()
        if line != self._last_line:
            self._last_line = line
            self._emit(line)

    def _emit(self, line: str) -> None:
        if not self.quiet:
            self._out(f"softplc: {line}")


def _print(line: str) -> None:
    print(line, flush=True)
