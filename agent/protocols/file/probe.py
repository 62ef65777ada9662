"""Commissioning check of a file-drop sink: the folder exists (or is made) and takes a file."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from agent.protocols.file.config import FileSinkConfig
from agent.protocols.probe import ProbeRow


def probe_file(name: str, cfg: FileSinkConfig, base_dir: Path) -> ProbeRow:
    folder = Path(cfg.dir) if os.path.isabs(cfg.dir) else base_dir / cfg.dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        test = folder / f".probe-{uuid.uuid4().hex}"
        test.write_bytes(b"probe\n")
        test.unlink()
    except OSError as exc:
        return ProbeRow(name, "write", str(folder), False, f"{exc.strerror}: {exc.filename}")
    return ProbeRow(name, "write", str(folder), True, "folder writable")
