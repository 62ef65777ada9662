"""OpcUaLink: the PlcLink over asyncua; writes typed to each node's DataType.

A node's DataType is read once and cached; a value that does not fit it (1.5
to a UInt16, 70000 to a UInt16, 2 to a Boolean) is refused before any write.
A fresh `Client` is built for every connect; a dead one is never reused.
`write_many` sends several nodes in one Write service call, in the order given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState

from agent.backoff import Backoff
from agent.protocols.link import (
    BIT_SIGNALS,
    ConfigurationFailure,
    PlcRejected,
    PlcUnavailable,
    SupervisedLink,
    Value,
)
from agent.protocols.opcua.certs import explain_connect_error
from agent.protocols.opcua.types import INT_RANGES, coerce

log = logging.getLogger(__name__)
ClientFactory = Callable[[], Awaitable[Client]]
_LINK_GONE = {
    ua.StatusCodes.BadSessionIdInvalid, ua.StatusCodes.BadSessionClosed,
    ua.StatusCodes.BadSecureChannelIdInvalid, ua.StatusCodes.BadSecureChannelClosed,
    ua.StatusCodes.BadConnectionClosed, ua.StatusCodes.BadCommunicationError,
    ua.StatusCodes.BadServerHalted, ua.StatusCodes.BadShutdown, ua.StatusCodes.BadNotConnected,
}
_ARG_TYPE = {bool: ua.VariantType.Boolean, int: ua.VariantType.UInt16, float: ua.VariantType.Float}
_REFUSED = {  # the PLC will never take this request: do not retry
    ua.StatusCodes.BadNodeIdUnknown, ua.StatusCodes.BadNodeIdInvalid, ua.StatusCodes.BadTypeMismatch,
    ua.StatusCodes.BadNotWritable, ua.StatusCodes.BadUserAccessDenied,
    ua.StatusCodes.BadOutOfRange, ua.StatusCodes.BadAttributeIdInvalid,
    ua.StatusCodes.BadMethodInvalid, ua.StatusCodes.BadArgumentsMissing,
    ua.StatusCodes.BadInvalidArgument, ua.StatusCodes.BadNotReadable, ua.StatusCodes.BadNoMatch,
    ua.StatusCodes.BadTooManyArguments, ua.StatusCodes.BadNotExecutable,
}


class OpcUaLink(SupervisedLink):
    def __init__(self, name: str, client_factory: ClientFactory, backoff: Backoff,
                 connect_timeout: float, certificate: str | None = None, where: str = "",
                 stop_method: tuple[str, str] | None = None) -> None:
        super().__init__(name, backoff)
        self.stop_method = stop_method  # (object node, method node): stop by method call
        self._factory = client_factory
        self._client: Client | None = None
        self.connect_timeout = connect_timeout
        self.certificate = certificate
        self.where = where
        self._types: dict[str, ua.VariantType] = {}

    # -- supervisor steps -----------------------------------------------------------
    async def _open(self) -> None:
        client: Client | None = None
        try:
            client = await self._factory()
            await asyncio.wait_for(client.connect(), self.connect_timeout)
        except BaseException as exc:
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.disconnect(), 1.0)
            if isinstance(exc, asyncio.CancelledError):
                raise
            if isinstance(exc, ConfigurationFailure):
                raise ConfigurationFailure(f"{self.where or self.name}: {exc}") from exc
            raise self._connect_error(exc) from exc
        self._client = client

    def _connect_error(self, exc: BaseException) -> Exception:
        cert = Path(self.certificate) if self.certificate else None
        msg, config_problem = explain_connect_error(exc, cert)
        msg = f"{self.where or self.name}: {msg}"
        return ConfigurationFailure(msg) if config_problem else ConnectionError(msg)

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 1.0)

    def _alive(self) -> bool:
        return self._client is not None and self._client.uaclient.state is UaClientState.CONNECTED

    # -- requests -------------------------------------------------------------------
    async def data_type(self, address: str, timeout: float) -> ua.VariantType:
        """The node's value type, read once and cached; PlcRejected when the node is missing."""
        cached = self._types.get(address)
        if cached is not None:
            return cached
        node = self._node(address)
        vtype: ua.VariantType = await self._request(
            "read type of", address,
            lambda: self._call(address, node.read_data_type_as_variant_type()), timeout)
        self._types[address] = vtype
        return vtype

    async def write(self, address: str, value: Value, timeout: float) -> None:
        try:
            vtype = await self.data_type(address, timeout)
            typed = coerce(address, vtype, value)
            dv = ua.DataValue(ua.Variant(typed, vtype))
            node = self._node(address)
            await self._request("write", address,
                                lambda: self._call(address, node.write_attribute(ua.AttributeIds.Value, dv)),
                                timeout)
        except Exception:
            self._stats.write_failures += 1
            raise
        self._stats.writes += 1

    async def write_many(self, items: Sequence[tuple[str, Value]], timeout: float) -> None:
        """One Write request carrying every node, in this order; refused if any node is."""
        label = ", ".join(a for a, _ in items)
        try:
            dvs = []
            for address, value in items:
                vtype = await self.data_type(address, timeout)
                dvs.append(ua.DataValue(ua.Variant(coerce(address, vtype, value), vtype)))
            ids = [self._node(a).nodeid for a, _ in items]
            await self._request("write", label, lambda: self._write_values(ids, dvs), timeout)
        except Exception:
            self._stats.write_failures += 1
            raise
        self._stats.writes += 1

    async def _write_values(self, ids: list[ua.NodeId], dvs: list[ua.DataValue]) -> None:
        client = self._client
        if client is None:
            raise PlcUnavailable(f"plc {self.name}: not connected")
        results = await client.uaclient.write_attributes(ids, dvs, ua.AttributeIds.Value)
        for nodeid, status in zip(ids, results, strict=True):
            await self._call(nodeid.to_string(), _check_status(status))

    async def read(self, address: str, timeout: float) -> Value:
        node = self._node(address)
        try:
            value = await self._request("read", address,
                                        lambda: self._call(address, node.read_value()), timeout)
        except Exception:
            self._stats.read_failures += 1
            raise
        self._stats.reads += 1
        if not isinstance(value, bool | int | float):
            raise PlcRejected(address, f"holds {type(value).__name__}, not a number or bit")
        return value

    async def call_stop_method(self, object_node: str, method_node: str, args: list[Value],
                               timeout: float) -> None:
        """Call a PLC method (e.g. stop with the defect code as UInt16) instead of writing a bit."""
        obj = self._node(object_node)
        mid = self._node(method_node).nodeid  # a NodeId: a str would be taken as a browse name
        variants = [ua.Variant(coerce(method_node, _ARG_TYPE[type(a)], a), _ARG_TYPE[type(a)])
                    for a in args]
        try:
            await self._request("call", method_node,
                                lambda: self._call(method_node, obj.call_method(mid, *variants)),
                                timeout)
        except Exception:
            self._stats.write_failures += 1
            raise
        self._stats.writes += 1

    # -- helpers --------------------------------------------------------------------
    def _node(self, address: str) -> Any:
        if self._client is None:
            raise PlcUnavailable(f"plc {self.name} not connected; {address}")
        try:
            return self._client.get_node(address)
        except Exception as exc:  # noqa: BLE001 - a malformed node id string
            raise PlcRejected(address, f"bad node id: {exc}") from None

    @staticmethod
    async def _call(address: str, aw: Awaitable[Any]) -> Any:
        """The server answered with a Bad status: refused for good, link gone, or try again."""
        try:
            return await aw
        except ua.UaStatusCodeError as exc:
            what = f"{type(exc).__name__}: {exc}"
            if exc.code in _REFUSED:
                raise PlcRejected(address, what) from None
            if exc.code in _LINK_GONE:
                raise  # the gate marks the link lost; the supervisor makes a new client
            raise PlcUnavailable(f"{address}: PLC answered {what}") from None

    async def probe_signal(self, signal: str, address: str, timeout: float) -> str:
        """Commissioning check without actuating: the node's DataType fits the signal; it reads."""
        vtype = await self.data_type(address, timeout)
        integer = vtype in INT_RANGES
        if signal in BIT_SIGNALS and not (vtype is ua.VariantType.Boolean or integer):
            raise PlcRejected(address, f"{signal} is a bit; node DataType {vtype.name} does not fit")
        if signal not in BIT_SIGNALS and not integer:
            raise PlcRejected(address, f"{signal} is an integer; node DataType {vtype.name} does not fit")
        value = await self.read(address, timeout)
        return f"{vtype.name} reads {value!r}"


async def _check_status(status: ua.StatusCode) -> None:
    status.check()  # raises UaStatusCodeError on a Bad status, mapped by OpcUaLink._call
