"""The soft PLC's OPC UA face: one variable node per tag, mirrored with PlcState.

Client writes reach the state through a data-change callback; state changes
from Modbus or the simulation are written into the nodes by one mirror task
(in order). Security: None by default; with a certificate and key, the listed
policies (e.g. Basic256Sha256 SignAndEncrypt) and optionally only trusted
client certificates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from asyncua import Server, ua, uamethod
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from agent.protocols.opcua.certs import read_props
from plc.state import PlcState, Value
from plc.tags import Tag

log = logging.getLogger(__name__)
VARIANT = {"bool": ua.VariantType.Boolean, "u16": ua.VariantType.UInt16,
           "i16": ua.VariantType.Int16, "u32": ua.VariantType.UInt32,
           "i32": ua.VariantType.Int32, "f32": ua.VariantType.Float}


@dataclass
class ServerSecurity:
    certificate: Path  # server certificate (DER or PEM)
    private_key: Path
    policies: list[ua.SecurityPolicyType] = field(default_factory=lambda: [
        ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    trusted_clients: list[Path] | None = None  # None: accept any client certificate
    application_uri: str = "urn:edge-agent:softplc:server"


class OpcUaFace:
    def __init__(self, state: PlcState, server: Server, nodes: dict[str, ua.NodeId]) -> None:
        self.state = state
        self.server = server
        self.nodes = nodes
        self._queue: asyncio.Queue[tuple[str, Value]] = asyncio.Queue()
        self._mirror: asyncio.Task[None] | None = None
        self._mirroring: str | None = None  # key being written by the mirror: not a client write
        state.listen(self._on_state)

    async def start(self) -> None:
        for key in self.nodes:
            await self._write_node(key, self.state.get(key))
        for key, nodeid in self.nodes.items():
            self.server.iserver.aspace.add_datachange_callback(
                nodeid, ua.AttributeIds.Value, self._callback(key))
        await self.server.start()
        self._mirror = asyncio.create_task(self._run_mirror(), name="softplc-opcua-mirror")

    async def stop(self) -> None:
        if self._mirror is not None:
            self._mirror.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mirror
            self._mirror = None
        await self.server.stop()

    def _on_state(self, key: str, value: Value, source: str) -> None:
        if source != "opcua" and key in self.nodes:
            self._queue.put_nowait((key, value))

    async def _run_mirror(self) -> None:
        while True:
            key, value = await self._queue.get()
            await self._write_node(key, value)

    async def _write_node(self, key: str, value: Value) -> None:
        vtype = VARIANT[self.state.tags.tags[key].type]
        self._mirroring = key
        try:
            await self.server.write_attribute_value(self.nodes[key], ua.DataValue(ua.Variant(value, vtype)))
        finally:
            self._mirroring = None

    def _callback(self, key: str):  # type: ignore[no-untyped-def]
        async def changed(_handle: int, dv: ua.DataValue) -> None:
            if key != self._mirroring and dv.Value is not None and dv.Value.Value is not None:
                self.state.set(key, dv.Value.Value, "opcua")
        return changed


async def build_opcua_face(
    state: PlcState, endpoint: str, security: ServerSecurity | None = None
) -> OpcUaFace:
    server = Server()
    await server.init()
    server.set_endpoint(endpoint)
    server.set_server_name("edge-agent soft PLC")
    await _apply_security(server, security)
    idx = await server.register_namespace(state.tags.namespace_uri)
    folder = await server.nodes.objects.add_folder(idx, "SoftPLC")
    nodes: dict[str, ua.NodeId] = {}
    for key, tag in state.tags.tags.items():
        nodes[key] = await _add_variable(folder, idx, tag)
    for station, (obj_id, method_id) in state.tags.stop_methods.items():
        await _add_stop_method(folder, state, station, obj_id, method_id)
    return OpcUaFace(state, server, nodes)


async def _add_stop_method(folder, state: PlcState, station: str, obj_id: str,  # type: ignore[no-untyped-def]
                           method_id: str) -> None:
    """A `Stop(defect_code: UInt16)` method: sets stop_request and defect_code."""

    @uamethod
    def stop(_parent: ua.NodeId, code: int) -> None:
        state.set(f"{station}.defect_code", code, "opcua-method")
        state.set(f"{station}.stop_request", True, "opcua-method")

    obj = await folder.add_object(ua.NodeId.from_string(obj_id), obj_id.split("=")[-1])
    await obj.add_method(ua.NodeId.from_string(method_id), "Stop", stop, [ua.VariantType.UInt16], [])


async def _add_variable(folder, idx: int, tag: Tag) -> ua.NodeId:  # type: ignore[no-untyped-def]
    nodeid = ua.NodeId.from_string(tag.opcua)
    if nodeid.NamespaceIndex != idx:
        raise ValueError(f"plc/tags.yaml: {tag.key}: node {tag.opcua} is not in namespace {idx}")
    var = await folder.add_variable(nodeid, tag.opcua.split("=")[-1], ua.Variant(tag.default(), VARIANT[tag.type]))
    await var.set_writable()
    return var.nodeid


async def _apply_security(server: Server, security: ServerSecurity | None) -> None:
    if security is None:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        return
    await server.set_application_uri(security.application_uri)
    cert, key = read_props(security.certificate), read_props(security.private_key)
    await server.load_certificate(cert.path_or_content, cert.extension)  # bytes: no file thread
    await server.load_private_key(key.path_or_content, None, key.extension)
    server.set_security_policy(security.policies)
    if security.trusted_clients is not None:
        server.set_certificate_validator(_trust_list_validator(security.trusted_clients))


def _trust_list_validator(paths: list[Path]):  # type: ignore[no-untyped-def]
    """Accept only client certificates found in `paths` (read at each session: files may
    be added while the PLC runs, as an operator trusting a certificate would)."""

    async def validate(cert: x509.Certificate, _app: ua.ApplicationDescription) -> None:
        trusted = {_der(p) for p in paths if p.is_file()}
        if cert.public_bytes(Encoding.DER) not in trusted:
            log.warning("soft PLC: refused untrusted client certificate %s", cert.subject.rfc4514_string())
            raise ua.UaStatusCodeError(ua.StatusCodes.BadCertificateUntrusted)

    return validate


def _der(path: Path) -> bytes:
    data = path.read_bytes()
    if data.startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)
