"""Under systemd with stderr on the journal, log lines carry the syslog priority prefix and no
time stamp of their own; elsewhere they keep the time stamp and no prefix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import logging
from agent.logsetup import setup_logging
setup_logging("debug")
log = logging.getLogger("agent.t")
log.debug("dbg")
log.info("inf")
log.warning("wrn")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("boom")
"""


def _run(tmp_path: Path, journal: bool) -> list[str]:
    err = tmp_path / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with open(err, "w") as fh:
        st = os.fstat(fh.fileno())
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino + (0 if journal else 1)}"
        subprocess.run([sys.executable, "-c", SCRIPT], stderr=fh, env=env, check=True, timeout=60)
    return err.read_text().splitlines()


def test_journal_lines_have_priorities_and_no_timestamp(tmp_path: Path) -> None:
    lines = _run(tmp_path, journal=True)
    assert lines[0] == "<7>DEBUG   agent.t: dbg"
    assert lines[1] == "<6>INFO    agent.t: inf"
    assert lines[2] == "<4>WARNING agent.t: wrn"
    assert lines[3] == "<3>ERROR   agent.t: boom"
    assert all(line.startswith("<3>") for line in lines[3:])  # the traceback's lines too
    assert any("ZeroDivisionError" in line for line in lines[3:])


def test_other_stderr_keeps_time_stamps_without_prefix(tmp_path: Path) -> None:
    lines = _run(tmp_path, journal=False)
    assert not lines[0].startswith("<") and lines[0].endswith("DEBUG   agent.t: dbg")
    assert lines[0][:4].isdigit()  # the year of the time stamp
