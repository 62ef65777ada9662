"""Secret interpolation: ${env:NAME}, ${file:PATH}, ${cred:NAME}.

`cred` reads a systemd credential from $CREDENTIALS_DIRECTORY (LoadCredential=).
Secret values are never printed: fields that hold them are pydantic SecretStr,
and errors name the reference, never the value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

_REF = re.compile(r"\$\{(env|file|cred):([^}]+)\}")


class SecretResolver:
    def __init__(self, base_dir: Path, environ: Mapping[str, str] | None = None) -> None:
        self.base_dir = base_dir
        self.environ = os.environ if environ is None else environ

    def interpolate(self, value: str) -> str:
        """Replace every reference in `value`; raise ValueError naming the bad reference."""
        return _REF.sub(lambda m: self._resolve(m.group(1), m.group(2).strip()), value)

    def _resolve(self, kind: str, ref: str) -> str:
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
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path} for {ref}: {exc.strerror}") from None
