"""Read a config or secret file safely: regular files only, never more than a size limit.

A FIFO would block the reader forever and `/dev/zero` would fill memory, so the
file is opened without blocking and checked (fstat) before a byte is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_CONFIG_BYTES = 1024 * 1024  # a config of a thousand stations is ~0.5 MiB
MAX_SECRET_BYTES = 64 * 1024

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


class FileProblem(Exception):
    """The file cannot be used; the message says why, e.g. "a FIFO, not a regular file"
    (no path: the caller names it)."""


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.4g} MiB"
    return f"{n / 1024:.4g} KiB" if n >= 1024 else f"{n} bytes"


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of `path`; FileProblem when it is not a regular file, is over `limit`
    or cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise FileProblem(str(exc.strerror)) from None
    try:
        st = os.fstat(fd)
        mode = st.st_mode
        for test, kind in _KINDS:
            if test(mode):
                raise FileProblem(f"{kind}, not a regular file")
        if not stat.S_ISREG(mode):
            raise FileProblem("not a regular file")
        if st.st_size > limit:
            raise FileProblem(f"{human_size(st.st_size)}, over the {human_size(limit)} limit")
        data = _read_at_most(fd, limit + 1)
    except OSError as exc:
        raise FileProblem(str(exc.strerror)) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileProblem(f"over the {human_size(limit)} limit")
    return data


def _read_at_most(fd: int, n: int) -> bytes:
    chunks: list[bytes] = []
    left = n
    while left > 0:
        chunk = os.read(fd, min(left, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
