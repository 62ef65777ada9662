"""Operator command authentication: HMAC-SHA256 over the canonical message, key never on the wire.

A signed message is a JSON object with two extra fields, `kid` (which key) and `mac`
(lowercase hex). The MAC covers the topic the message is published on and every other
field of the object, in a canonical form:

    mac = HMAC-SHA256(key[kid], topic + "\\n" + canonical_json(message without "mac"))
    canonical_json: keys sorted, no spaces (separators "," and ":"), UTF-8, non-ASCII
                    characters as themselves (JSON.stringify of the sorted object)

Binding the topic means a command for one agent cannot be replayed to another agent
that shares the key, and an agent's answer (on `.../cmd/result`) can never pass for a
command. The key is a credential (`${cred:...}` / `${file:...}`); `kid` names it, so a
new key can be rolled out while the previous ones are still accepted (rotation).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAC_FIELD = "mac"
KID_FIELD = "kid"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def canonical(topic: str, message: Mapping[str, Any]) -> bytes:
    """The bytes the MAC covers: the topic, a newline, the message without `mac`."""
    body = {k: v for k, v in message.items() if k != MAC_FIELD}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{topic}\n{text}".encode("utf-8", "surrogatepass")  # a lone surrogate: no raise


@dataclass(frozen=True)
class Keyring:
    """The current key (used to sign) and the keys accepted when verifying, by key id."""

    current: str  # key id used to sign
    keys: Mapping[str, bytes] = field(repr=False)  # key id -> key; holds `current`

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ValueError(f"key id {self.current!r} has no key")

    def mac(self, kid: str, topic: str, message: Mapping[str, Any]) -> str:
        return hmac.new(self.keys[kid], canonical(topic, message), hashlib.sha256).hexdigest()

    def sign(self, topic: str, message: Mapping[str, Any]) -> dict[str, Any]:
        """`message` with `kid` (the current key) and its `mac` added."""
        out = {k: v for k, v in message.items() if k != MAC_FIELD}
        out[KID_FIELD] = self.current
        out[MAC_FIELD] = self.mac(self.current, topic, out)
        return out

    def verify(self, topic: str, message: Mapping[str, Any]) -> str | None:
        """None when the message carries a valid MAC by a known key; else why not."""
        kid, mac = message.get(KID_FIELD), message.get(MAC_FIELD)
        if not isinstance(kid, str) or not isinstance(mac, str):
            return "not authenticated: `kid` and `mac` are required"
        if kid not in self.keys:
            return f"not authenticated: unknown key id {kid[:64]!r}"
        if not _HEX64.fullmatch(mac) or not hmac.compare_digest(
                mac, self.mac(kid, topic, message)):
            return "not authenticated: wrong mac"
        return None


def keyring(current_id: str, current: str, previous: Mapping[str, str]) -> Keyring:
    """A keyring from the config's key texts (UTF-8 bytes of each credential)."""
    keys = {kid: key.encode() for kid, key in previous.items()}
    keys[current_id] = current.encode()
    return Keyring(current_id, keys)
