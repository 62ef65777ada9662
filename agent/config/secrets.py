"""Secret interpolation: ${env:NAME}, ${file:PATH}, ${cred:NAME}.

`cred` reads a systemd credential from $CREDENTIALS_DIRECTORY (LoadCredential=).
Secret values are never printed: fields that hold them are pydantic SecretStr,
errors name the reference, never the value, and the loader scrubs every value
resolved here from its error messages (`values`). A secret file must be a
regular file of at most 64 KiB: a FIFO or `/dev/zero` is refused, never read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from agent.config.files import MAX_SECRET_BYTES, FileProblem, read_regular

_REF = re.compile(r"\$\{(env|file|cred):([^}]+)\}")


class SecretResolver:
    def __init__(self, base_dir: Path, environ: Mapping[str, str] | None = None) -> None:
        self.base_dir = base_dir
        self.environ = os.environ if environ is None else environ
        self.values: list[str] = []  # every secret resolved, to keep out of messages

    def interpolate(self, value: str) -> str:
        """Replace every reference in `value`; raise ValueError naming the bad reference."""
        return _REF.sub(lambda m: self._resolve(m.group(1), m.group(2).strip()), value)

    def _resolve(self, kind: str, ref: str) -> str:
        value = self._lookup(kind, ref)
        self.values.append(value)
        return value

    def _lookup(self, kind: str, ref: str) -> str:
        if kind == "env":
            if ref not in self.environ:
                raise ValueError(f"environment variable {ref!r} is not set (${{env:{ref}}})")
            return self.environ[ref]
        if kind == "file":
            return self._read(self.base_dir / ref, f"${{file:{ref}}}")
        creds = self.environ.get("CREDENTIALS_DIRECTORY")
        if not creds:
            raise ValueError(
                f"${{cred:{ref}}} needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=)"
            )
        return self._read(Path(creds) / ref, f"${{cred:{ref}}}")

    @staticmethod
    def _read(path: Path, ref: str) -> str:
        try:
            return read_regular(path, MAX_SECRET_BYTES).decode("utf-8").rstrip("\r\n")
        except FileProblem as exc:
            raise ValueError(f"cannot read secret file {path} for {ref}: {exc}") from None
        except UnicodeDecodeError:
            raise ValueError(f"cannot read secret file {path} for {ref}: not UTF-8 text") from None
