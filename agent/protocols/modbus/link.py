"""ModbusLink: the PlcLink over pymodbus (TCP or RTU), typed by the address.

Addresses are `coil:N`, `di:N`, `hr:N[:type]`, `ir:N[:type]` (see
`modbus_address`). Writes go to coils and holding registers only; 32-bit
values use the PLC's word order. With `verify_writes` every write is read back
and compared. `write_many` puts holding registers that follow each other into one
FC16 request. Modbus exceptions 5, 6, 10 and 11 are transient (`PlcBusy`: retried
within the deadline); 1-4 and any other are permanent (`PlcRejected`, the exception
named).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from agent.backoff import Backoff
from agent.protocols.link import (
    AGENT_WRITES,
    BIT_SIGNALS,
    PlcBusy,
    PlcRejected,
    PlcUnavailable,
    SupervisedLink,
    Value,
)
from agent.protocols.modbus.address import ModbusAddress, parse_modbus_address
from agent.protocols.modbus.codec import (
    CodecError,
    RegisterRun,
    WordOrder,
    check_value,
    decode,
    encode,
    register_runs,
)

log = logging.getLogger(__name__)
ModbusClient = AsyncModbusTcpClient | AsyncModbusSerialClient
_READ = {"coil": "read_coils", "di": "read_discrete_inputs",
         "hr": "read_holding_registers", "ir": "read_input_registers"}


class ModbusLink(SupervisedLink):
    def __init__(
        self,
        name: str,
        client_factory: Callable[[], ModbusClient],
        device_id: int,
        word_order: WordOrder,
        backoff: Backoff,
        verify_writes: bool = False,
        where: str = "",
    ) -> None:
        super().__init__(name, backoff)
        self._factory = client_factory
        self._client: ModbusClient | None = None
        self.device_id = device_id
        self.word_order = word_order
        self.verify_writes = verify_writes
        self.where = where
        self._addresses: dict[str, ModbusAddress] = {}

    # -- supervisor steps -----------------------------------------------------------
    async def _open(self) -> None:
        client = self._factory()  # a fresh client every time: never reuse a dead one
        if not await client.connect():
            client.close()
            raise ConnectionError(f"cannot connect to {self.where or self.name}")
        self._client = client

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _alive(self) -> bool:
        return self._client is not None and self._client.connected

    # -- addresses ------------------------------------------------------------------
    def address(self, text: str) -> ModbusAddress:
        """Parse (cached); PlcRejected naming the address when it is malformed."""
        addr = self._addresses.get(text)
        if addr is None:
            try:
                addr = parse_modbus_address(text)
            except ValueError as exc:
                raise PlcRejected(text, str(exc)) from None
            self._addresses[text] = addr
        return addr

    # -- requests -------------------------------------------------------------------
    async def write(self, address: str, value: Value, timeout: float) -> None:
        addr = self.address(address)
        if not addr.writable:
            raise PlcRejected(address, f"{addr.table} is read-only")
        try:
            value = check_value(addr, value)
        except CodecError as exc:
            raise PlcRejected(address, str(exc)) from None
        try:
            await self._request("write", address, lambda: self._write(addr, value), timeout)
        except Exception:
            self._stats.write_failures += 1
            raise
        self._stats.writes += 1

    async def write_many(self, items: Sequence[tuple[str, Value]], timeout: float) -> None:
        """Write in order; holding registers that follow each other go in one FC16."""
        try:
            runs = register_runs([(self._writable(a), v) for a, v in items], self.word_order)
        except CodecError as exc:
            raise PlcRejected(", ".join(a for a, _ in items), str(exc)) from None
        end = time.monotonic() + timeout
        for run in runs:
            label = run.label if len(run.addresses) > 1 else str(run.addresses[0])
            try:
                await self._request("write", label, functools.partial(self._write_run, run),
                                    max(0.001, end - time.monotonic()))
            except Exception:
                self._stats.write_failures += 1
                raise
            self._stats.writes += 1

    def _writable(self, address: str) -> ModbusAddress:
        addr = self.address(address)
        if not addr.writable:
            raise PlcRejected(address, f"{addr.table} is read-only")
        return addr

    async def _write_run(self, run: RegisterRun) -> None:
        if len(run.addresses) == 1:
            await self._write(run.addresses[0], run.values[0])
            return
        client = self._live_client()
        rr = await client.write_registers(run.start, run.words, device_id=self.device_id)
        self._check(run.label, rr)
        if self.verify_writes:
            for addr, value in zip(run.addresses, run.values, strict=True):
                await self._verify(addr, value)

    async def read(self, address: str, timeout: float) -> Value:
        addr = self.address(address)
        try:
            value = await self._request("read", address, lambda: self._read(addr), timeout)
        except Exception:
            self._stats.read_failures += 1
            raise
        self._stats.reads += 1
        return value

    async def _write(self, addr: ModbusAddress, value: Value) -> None:
        client = self._live_client()
        if addr.table == "coil":
            rr = await client.write_coil(addr.index, bool(value), device_id=self.device_id)
        elif addr.width == 1:
            word = encode(addr, value, self.word_order)[0]
            rr = await client.write_register(addr.index, word, device_id=self.device_id)
        else:
            words = encode(addr, value, self.word_order)
            rr = await client.write_registers(addr.index, words, device_id=self.device_id)
        self._check(addr, rr)
        if self.verify_writes:
            await self._verify(addr, value)

    async def _verify(self, addr: ModbusAddress, value: Value) -> None:
        got = await self._read(addr)
        if got != value:
            self._stats.verify_mismatches += 1
            raise PlcUnavailable(f"plc {self.name}: read-back of {addr} gave {got!r}, wrote {value!r}")

    async def _read(self, addr: ModbusAddress) -> Value:
        client = self._live_client()
        method = getattr(client, _READ[addr.table])
        rr = await method(addr.index, count=addr.width, device_id=self.device_id)
        self._check(addr, rr)
        if addr.table in ("coil", "di"):
            return bool(rr.bits[0])
        return decode(addr, list(rr.registers[: addr.width]), self.word_order)

    def _live_client(self) -> ModbusClient:
        if self._client is None:
            raise PlcUnavailable(f"plc {self.name}: not connected")
        return self._client

    def _check(self, where: ModbusAddress | str, rr: Any) -> None:
        if not rr.isError():
            return
        code = getattr(rr, "exception_code", None)
        what = f"PLC answered Modbus exception {code} ({exception_name(code)})"
        if code in TRANSIENT:
            raise PlcBusy(f"plc {self.name}: {where}: {what}", maybe_applied=code == ACKNOWLEDGE)
        raise PlcRejected(str(where), what)

    async def probe_signal(self, signal: str, address: str, timeout: float) -> str:
        """Commissioning check without actuating: the table and type fit the signal; it reads."""
        addr = self.address(address)
        if signal in AGENT_WRITES and not addr.writable:
            raise PlcRejected(address, f"the agent writes {signal}, but {addr.table} is read-only")
        if signal in BIT_SIGNALS and addr.dtype not in ("bool", "u16", "i16"):
            raise PlcRejected(address, f"{signal} is a bit; {addr.dtype} does not fit")
        if signal not in BIT_SIGNALS and addr.dtype == "bool":
            raise PlcRejected(address, f"{signal} is a number; a {addr.table} holds one bit")
        value = await self.read(address, timeout)
        return f"{addr.dtype} reads {value!r}"


ACKNOWLEDGE = 5  # accepted, still working on it: may take effect
TRANSIENT = {ACKNOWLEDGE, 6, 10, 11}
_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
          4: "server device failure", 5: "acknowledge: still processing", 6: "server device busy",
          8: "memory parity error", 10: "gateway path unavailable",
          11: "gateway target device failed to respond"}


def exception_name(code: int | None) -> str:
    """The Modbus specification's name of an exception code."""
    return _NAMES.get(code or 0, "unknown exception")
