"""The daemon's memory footprint (issue 20): OPC UA's client library (~40 MB of RSS) is
imported only when an OPC UA PLC or sink is used, not by the daemon's start-up imports."""

from __future__ import annotations

import subprocess
import sys


def test_the_daemon_does_not_import_asyncua_until_opc_ua_is_used() -> None:
    code = ("import sys, agent.app, agent.commands.run, agent.protocols.probe; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'asyncua'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
