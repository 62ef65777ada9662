"""Why an MQTT connection failed, worded once, and whether retrying can fix it.

Every MQTT client of the agent (the MQTT and Sparkplug sinks, the MQTT PLC link, `probe`,
`reset`, `alerts`) reads a refused CONNACK or a failed connect through this one table: the
daemon and the commands give the same reason and take the same decision (keep retrying, or
FAILED / give up with the reason).
"""

from __future__ import annotations

import ssl
from typing import NamedTuple

from paho.mqtt.reasoncodes import ReasonCode

# CONNACK reason codes that retrying will not fix (MQTT 5 numbering; paho maps the 3.1.1
# return codes onto it: 1 -> 0x84, 2 -> 0x85, 4 -> 0x86, 5 -> 0x87; 3 -> 0x88 is retried)
REFUSED_FOR_GOOD = {
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x8A: "banned",
    0x8C: "bad authentication method",
    0x95: "packet too large (the Last Will or credentials)",
    0x9A: "retain not supported (the status and its Last Will are retained)",
    0x9B: "QoS not supported",
    0x9D: "server moved",
}  # 0x9C "use another server" is temporary (MQTT 5, 3.2.2.2): retried

# a TLS connection that broke off (reset, EOF, interrupted) says nothing about certificates
TLS_TRANSIENT = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError,
                 ssl.SSLWantReadError, ssl.SSLWantWriteError)


class Refusal(NamedTuple):
    """A failed connection: the reason (for logs and the operator) and whether retrying
    cannot fix it (`for_good`: configuration, credentials or certificates are wrong)."""

    reason: str
    for_good: bool


def describe_connack(reason: ReasonCode) -> Refusal:
    """The refusal a CONNACK's failure reason code stands for."""
    value = int(reason.value)
    if value in REFUSED_FOR_GOOD:
        return Refusal(f"broker refused the connection: {REFUSED_FOR_GOOD[value]}", True)
    return Refusal(f"broker refused the connection: {reason} (0x{value:02X})", False)


def connack_refusal(reason: ReasonCode) -> Refusal | None:
    """None for an accepted CONNACK, else its refusal."""
    return describe_connack(reason) if reason.is_failure else None


def describe_connect_error(exc: BaseException | None) -> Refusal:
    """The refusal a failed connect attempt (no CONNACK) stands for: certificate and TLS
    handshake errors are for good; a TLS connection that broke off and the others (refused,
    timed out, unreachable) are retried."""
    if exc is None:
        return Refusal("connection failed", False)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Refusal(f"TLS certificate verification failed: {exc.verify_message or exc}", True)
    if isinstance(exc, TLS_TRANSIENT):
        return Refusal(f"TLS connection broke off: {type(exc).__name__}: {exc}", False)
    if isinstance(exc, ssl.SSLError):
        return Refusal(f"TLS handshake failed: {getattr(exc, 'reason', None) or exc}", True)
    if isinstance(exc, ssl.CertificateError):
        return Refusal(f"TLS host name mismatch: {exc}", True)
    if isinstance(exc, ConnectionRefusedError):
        return Refusal("connection refused (is the broker running and listening on this port?)",
                       False)
    if isinstance(exc, TimeoutError):
        return Refusal("connection timed out", False)
    return Refusal(f"{type(exc).__name__}: {exc}", False)


# the broker closed the connection after the TLS handshake, before any CONNACK
CLOSED_BEFORE_CONNACK = Refusal("broker closed the connection before CONNACK (client "
                                "certificate refused, or not a MQTT/TLS port?)", True)
