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
import time
from typing import Any

from asyncua.common.callback import CallbackType, ServerItemCallback

from plc.opcua_server import build_opcua_face
from plc.state import PlcState
from plc.tags import load_tags
from tests.support.peer_process import RecordingPeer


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


class OpcUaPeer(RecordingPeer):
    """Run the peer as a subprocess; `writes` fills in as it reports them."""

    module = "tests.support.opcua_peer"

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/peer"


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    asyncio.run(serve(p.parse_args().port))
