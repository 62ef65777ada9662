"""File-drop sink plugin (legacy MES): config model and factory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from agent.config.base import Strict
from agent.sinks.base import SinkContext
from agent.sinks.outbox_policy import OutboxPolicy

if TYPE_CHECKING:
    from agent.sinks.file_sink import FileSink


class FileSinkConfig(Strict):
    type: Literal["file"] = Field(description="JSON lines or CSV files dropped into a folder.")
    dir: str = Field(description="Folder the files are dropped into (relative to the config file).")
    format: Literal["jsonl", "csv"] = Field("jsonl", description="File format.")
    rotate_bytes: int = Field(1024 * 1024, ge=1024, description="Start a new file after this size.")
    rotate_s: float = Field(3600.0, gt=0, description="Start a new file after this many seconds.")
    evidence: bool = Field(True, description="Copy the images a record references (evidence) into the same folder, before the record is written.")
    outbox: OutboxPolicy = Field(default_factory=OutboxPolicy, description="Outbox bounds for this sink.")


def build(name: str, cfg: FileSinkConfig, ctx: SinkContext) -> FileSink:
    """Factory: the folder resolved against the config file's folder."""
    from agent.sinks.file_sink import FileSink

    folder = Path(cfg.dir)
    return FileSink(name, cfg, folder if folder.is_absolute() else ctx.base_dir / folder)
