"""A TCP proxy for fault injection between the agent and a real peer.

It forwards bytes both ways and, on demand, delays what the client sends
(`delay_up`: a random delay per chunk, order kept), cuts the connection right
after forwarding a chosen request (`cut_after`: the request reaches the server,
its answer never reaches the client), refuses new connections for a while
(`refuse_for`) or flips bytes of the next answer (`corrupt_next`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

from tests.support.ports import free_port

Pair = tuple[asyncio.StreamWriter, asyncio.StreamWriter]


class TcpProxy:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.upstream_port = host, upstream_port
        self.port = free_port()
        self.delay_up: tuple[float, float] | None = None
        self.cut_after: Callable[[bytes], bool] | None = None
        self.refuse_until = 0.0
        self.corrupt_next = False
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._pairs: set[Pair] = set()
        self._muted: set[Pair] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        return self

    def refuse_for(self, seconds: float) -> None:
        self.refuse_until = time.monotonic() + seconds

    def cut(self) -> None:
        """Close every open connection now."""
        for a, b in list(self._pairs):
            a.close()
            b.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self.refuse_until:
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            writer.close()
            return
        self.connections += 1
        pair = (writer, up_w)
        self._pairs.add(pair)
        for coro in (self._up(reader, up_w, pair), self._down(up_r, writer, pair)):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _up(self, reader: asyncio.StreamReader, up: asyncio.StreamWriter, pair: Pair) -> None:
        due = 0.0
        try:
            while chunk := await reader.read(1 << 16):
                if self.delay_up is not None:
                    due = max(due, time.monotonic() + random.uniform(*self.delay_up))
                    self._later(due, up, chunk)
                    continue
                cut = self.cut_after is not None and self.cut_after(chunk)
                if cut:
                    self.cut_after = None
                    self._muted.add(pair)  # its answer never reaches the client
                up.write(chunk)
                await up.drain()
                if cut:
                    await asyncio.sleep(0.05)  # let the request reach the server
                    self._close(pair)
                    return
        except (OSError, ConnectionError):
            pass
        if self.delay_up is None:
            self._close(pair)

    def _later(self, due: float, up: asyncio.StreamWriter, chunk: bytes) -> None:
        async def send() -> None:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if not up.is_closing():
                up.write(chunk)
        task = asyncio.create_task(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _down(self, up: asyncio.StreamReader, writer: asyncio.StreamWriter, pair: Pair) -> None:
        try:
            while chunk := await up.read(1 << 16):
                if pair in self._muted:
                    continue
                if self.corrupt_next:
                    self.corrupt_next = False
                    chunk = bytes(b ^ 0x5A for b in chunk)
                writer.write(chunk)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        self._close(pair)

    def _close(self, pair: Pair) -> None:
        self._pairs.discard(pair)
        for w in pair:
            w.close()


def modbus_coil_write(coil: int, on: bool) -> Callable[[bytes], bool]:
    """Predicate: the chunk is a Modbus TCP FC5 write of `coil` to `on`."""
    value = b"\xff\x00" if on else b"\x00\x00"

    def match(chunk: bytes) -> bool:
        return (len(chunk) >= 12 and chunk[7] == 5
                and int.from_bytes(chunk[8:10], "big") == coil and chunk[10:12] == value)
    return match
