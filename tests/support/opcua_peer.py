"""The soft PLC's OPC UA face in its own process, printing every Write request it
gets, for tests of the order of node writes.

    python -m tests.support.opcua_peer --port P

One JSON line per Write service request, before it is applied:
{"nodes": ["ns=2;s=...", ...], "values": [...], "t": monotonic}; the nodes in the
order of the request. `OpcUaPeer` runs it from a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from asyncua.common.callback import CallbackType, ServerItemCallback

from plc.opcua_server import build_opcua_face
from plc.state import PlcState
from plc.tags import load_tags


def _record(event: ServerItemCallback, _dispatcher: Any) -> None:
    if not event.is_external:  # the server's own writes (status, mirror)
        return
    items = event.request_params.NodesToWrite
    print(json.dumps({"nodes": [w.NodeId.to_string() for w in items],
                      "values": [w.Value.Value.Value for w in items], "t": time.monotonic()},
                     default=str), flush=True)


async def serve(port: int) -> None:
    face = await build_opcua_face(PlcState(load_tags()), f"opc.tcp://127.0.0.1:{port}/peer")
    face.server.subscribe_server_callback(CallbackType.PreWrite, _record)
    await face.start()
    print("READY", flush=True)
    await asyncio.Event().wait()


class OpcUaPeer:
    """Run the peer as a subprocess; `writes` fills in as it reports them."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/peer"
        self.writes: list[dict[str, Any]] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> OpcUaPeer:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.opcua_peer", "--port", str(self.port),
            stdout=asyncio.subprocess.PIPE)
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 30)
        assert line.strip() == b"READY", line
        self._reader = asyncio.create_task(self._read(self._proc.stdout))
        return self

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.writes.append(json.loads(line))

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        self._proc = self._reader = None


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    asyncio.run(serve(p.parse_args().port))
