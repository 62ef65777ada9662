"""File-drop sink factory (the registry's `file` sink)."""

from __future__ import annotations

from pathlib import Path

from agent.protocols.base import SinkContext
from agent.protocols.file.config import FileSinkConfig
from agent.protocols.file.sink import FileSink


def build(name: str, cfg: FileSinkConfig, ctx: SinkContext) -> FileSink:
    """Factory: the folder resolved against the config file's folder."""
    folder = Path(cfg.dir)
    return FileSink(name, cfg, folder if folder.is_absolute() else ctx.base_dir / folder)
