"""OPC UA security helpers: policy names -> asyncua classes, client certificate
generation (with the application URI the server expects), server certificate
trust, and errors that say which side rejected what."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from asyncua import ua
from asyncua.crypto import cert_gen, security_policies, uacrypto
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.protocols.link import ConfigurationFailure

log = logging.getLogger(__name__)

POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
_CLIENT_CERT_REJECTED = {
    ua.StatusCodes.BadCertificateUntrusted, ua.StatusCodes.BadCertificateInvalid,
    ua.StatusCodes.BadCertificateUriInvalid, ua.StatusCodes.BadCertificateTimeInvalid,
    ua.StatusCodes.BadCertificateRevoked, ua.StatusCodes.BadCertificateUseNotAllowed,
    ua.StatusCodes.BadSecurityChecksFailed, ua.StatusCodes.BadCertificateIssuerRevocationUnknown,
    ua.StatusCodes.BadCertificateRevocationUnknown,
}


class ServerCertificateRejected(ConfigurationFailure):
    """We (the client) refused the certificate the server presented."""


def policy_class(name: str) -> type[security_policies.SecurityPolicy]:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"security policy {name!r} is not supported; use {', '.join(POLICIES)}") from None


async def ensure_client_certificate(cert: Path, key: Path, application_uri: str) -> bool:
    """Create key and certificate when missing; True when something was generated."""
    if cert.is_file() and key.is_file():
        return False
    write_self_signed(cert, key, application_uri, [ExtendedKeyUsageOID.CLIENT_AUTH])
    log.warning("generated OPC UA client certificate %s (application URI %s); trust it on the "
                "server: thumbprint sha1 %s", cert, application_uri, await thumbprint(cert))
    return True


def write_self_signed(cert: Path, key: Path, application_uri: str,
                      use: list[x509.ObjectIdentifier], days: int = 3650) -> None:
    """A self-signed application certificate (DER) and its key (PEM, mode 0600)."""
    host = socket.gethostname()
    pk = cert_gen.generate_private_key()
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri),
                                     x509.DNSName(host), x509.DNSName("localhost")]
    certificate = cert_gen.generate_self_signed_app_certificate(
        pk, application_uri, {"organizationName": "edge-agent"}, names, extended=use, days=days)
    for path in (cert, key):
        path.parent.mkdir(parents=True, exist_ok=True)
    key.write_bytes(cert_gen.dump_private_key_as_pem(pk))
    key.chmod(0o600)
    cert.write_bytes(certificate.public_bytes(Encoding.DER))


def read_props(path: Path, password: str | None = None) -> uacrypto.CertProperties:
    """File content for asyncua (bytes: asyncua would otherwise read it on a worker thread)."""
    data = path.read_bytes()
    ext = "pem" if data.lstrip().startswith(b"-----BEGIN") else "der"
    return uacrypto.CertProperties(data, extension=ext, password=password)


def load_cert(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


async def thumbprint(path: Path) -> str:
    return load_cert(path).fingerprint(hashes.SHA1()).hex()  # noqa: S303 - OPC UA uses SHA1


def trust_validator(trusted: x509.Certificate, trusted_path: Path):  # type: ignore[no-untyped-def]
    """A client-side validator: the server must present exactly the trusted certificate."""

    async def validate(cert: x509.Certificate, _app: ua.ApplicationDescription) -> None:
        if cert.fingerprint(hashes.SHA256()) != trusted.fingerprint(hashes.SHA256()):
            raise ServerCertificateRejected(
                f"we rejected the server certificate (sha1 {cert.fingerprint(hashes.SHA1()).hex()}, "
                f"subject {cert.subject.rfc4514_string()}): it is not the trusted server_certificate "
                f"{trusted_path}")
    return validate


def explain_connect_error(exc: BaseException, cert: Path | None) -> tuple[str, bool]:
    """(message saying which side rejected what, whether retrying cannot help)."""
    if isinstance(exc, ServerCertificateRejected):
        return str(exc), True
    code = getattr(exc, "code", None)
    if code in _CLIENT_CERT_REJECTED:
        return (f"the server rejected our client certificate {cert} ({type(exc).__name__}): "
                "trust it on the server (copy it into the server's trusted certificates)"), True
    if code in (ua.StatusCodes.BadUserAccessDenied, ua.StatusCodes.BadIdentityTokenRejected,
                ua.StatusCodes.BadIdentityTokenInvalid):
        return (f"the server rejected our user identity ({type(exc).__name__}): "
                "check username/password"), True
    return f"{type(exc).__name__}: {exc}", False


def check_server_certificate(endpoints: list[ua.EndpointDescription], policy_uri: str,
                             mode: ua.MessageSecurityMode, trusted: x509.Certificate,
                             trusted_path: Path) -> None:
    """Before any secure channel: the server must offer the policy and present the trusted cert."""
    offered = [e for e in endpoints if e.SecurityPolicyUri == policy_uri and e.SecurityMode == mode]
    if not offered:
        raise ServerCertificateRejected(
            f"the server offers no endpoint with {policy_uri.rsplit('#', 1)[-1]} {mode.name}")
    presented = uacrypto.x509_from_der(offered[0].ServerCertificate)
    if presented is None:
        raise ServerCertificateRejected("the server presented no certificate")
    if presented.fingerprint(hashes.SHA256()) != trusted.fingerprint(hashes.SHA256()):
        raise ServerCertificateRejected(
            f"we rejected the server certificate (sha1 {presented.fingerprint(hashes.SHA1()).hex()}, "
            f"subject {presented.subject.rfc4514_string()}): it is not the trusted "
            f"server_certificate {trusted_path}")
