"""A test peer (Modbus or OPC UA server) in its own process that reports each write it
receives as a JSON line on stdout; `writes` fills in as they arrive."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


class RecordingPeer:
    module = ""  # the peer's module, run with `python -m`

    def __init__(self, port: int, *extra: str) -> None:
        self.port, self.extra = port, extra
        self.writes: list[dict[str, Any]] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> Any:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module, "--port", str(self.port), *self.extra,
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
