"""Logging set-up: readable text by default, JSON lines with --log-format json.

Under systemd, when stderr is the journal (`JOURNAL_STREAM` names its device and inode),
every line starts with its syslog priority (`<3>` error, `<4>` warning, `<6>` info,
`<7>` debug) so that `journalctl -p err` selects by level, and carries no time stamp of
its own (the journal stamps each entry).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

_STD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update({k: v for k, v in vars(record).items() if k not in _STD})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


SYSLOG_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4,
                   logging.INFO: 6, logging.DEBUG: 7}


def to_journal(stream: TextIO) -> bool:
    """True when `stream` is the journal stream systemd connected (JOURNAL_STREAM=dev:inode)."""
    want = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return want == f"{st.st_dev}:{st.st_ino}"


class JournalFormatter(logging.Formatter):
    """Prefix each line (a traceback's too: the journal splits on newlines) with the priority."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prio = SYSLOG_PRIORITY.get(record.levelno, 7 if record.levelno < logging.INFO else 3)
        text = self.inner.format(record)
        return "\n".join(f"<{prio}>{line}" for line in text.split("\n"))


def setup_logging(level: str = "info", fmt: str = "text", file: str | None = None) -> None:
    """Log to stderr (the journal under systemd), or to `file` (the demo's live view owns
    the terminal)."""
    handler: logging.Handler = (logging.FileHandler(file, encoding="utf-8") if file
                                else logging.StreamHandler(sys.stderr))
    journal = file is None and to_journal(sys.stderr)
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter()
    elif journal:
        formatter = logging.Formatter("%(levelname)-7s %(name)s: %(message)s")
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler.setFormatter(JournalFormatter(formatter) if journal else formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("asyncua", "pymodbus"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
