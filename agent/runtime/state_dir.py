"""Start-up check of `state_dir`: a writable directory on real storage, or one line saying why not.

A full disk is not a reason to refuse the start: the line must still be
protected (commands, heartbeat, fail-safe), so ENOSPC and EDQUOT pass here
and are handled where records are written.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

PSEUDO_FS = (Path("/proc"), Path("/sys"))
_FULL = (errno.ENOSPC, errno.EDQUOT)


def state_dir_problem(path: Path) -> str | None:
    """None when `path` is (or could be made) a writable directory; else the reason, one line."""
    for root in PSEUDO_FS:
        if path == root or root in path.parents:
            return f"state_dir {path} is under {root}, a kernel pseudo-filesystem, not storage"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"state_dir {path} exists and is not a directory"
    except OSError as exc:
        return None if exc.errno in _FULL else f"cannot create state_dir {path}: {exc.strerror}"
    return _write_probe(path)


def _write_probe(path: Path) -> str | None:
    try:
        fd, name = tempfile.mkstemp(dir=path, prefix=".write-test-")
    except OSError as exc:
        return None if exc.errno in _FULL else f"state_dir {path} is not writable: {exc.strerror}"
    os.close(fd)
    os.unlink(name)
    return None
