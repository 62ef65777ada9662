"""The release as users get it: the wheel built from the files of this checkout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def export_repo(dest: Path, version: str | None = None) -> Path:
    """The tracked and untracked-but-not-ignored files of the checkout (links as links:
    agent/data/config and agent/data/models), optionally with another version."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        src, dst = REPO / os.fsdecode(name), dest / os.fsdecode(name)
        if src.is_symlink():
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(os.readlink(src))
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    if version:
        pp = dest / "pyproject.toml"
        pp.write_text(re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', pp.read_text()))
    return dest


def build_wheel(src: Path, out: Path) -> Path:
    """`pip wheel` with the interpreter running the tests (setuptools and wheel are dev extras)."""
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                             "--no-build-isolation", "-w", str(out), str(src)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    [whl] = out.glob("*.whl")
    return whl
