"""File-drop sink plugin (legacy MES): config model and factory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from agent.config.plugin import Plugin
from agent.protocols.base import SinkSettings
from agent.protocols.outbox_policy import OutboxPolicy

if TYPE_CHECKING:
    pass


class FileSinkConfig(SinkSettings):
    type: Literal["file"] = Field(description="JSON lines or CSV files dropped into a folder.")
    dir: str = Field(description="Folder the files are dropped into (relative to the config file).")
    format: Literal["jsonl", "csv"] = Field("jsonl", description="File format.")
    rotate_bytes: int = Field(1024 * 1024, ge=1024, description="Start a new file after this size.")
    rotate_s: float = Field(3600.0, gt=0, description="Start a new file after this many seconds.")
    evidence: bool = Field(True, description="Copy the images a record references (evidence) into the same folder, before the record is written.")
    outbox: OutboxPolicy = Field(default_factory=OutboxPolicy, description="Outbox bounds for this sink.")


SINK = Plugin("file", FileSinkConfig, "agent.protocols.file.factory:build")
