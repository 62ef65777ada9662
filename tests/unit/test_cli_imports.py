"""`edge-agent --version` and `--help` load no subcommand: no onnxruntime, OpenCV or asyncua."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("onnxruntime", "cv2", "asyncua", "pymodbus", "paho", "pydantic")

PROBE = """
import sys
from agent.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print(sorted(m for m in {heavy!r} if m in sys.modules))
"""


def _loaded_after(argv: list[str]) -> str:
    code = PROBE.format(argv=argv, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    return out.stdout.strip().splitlines()[-1]


def test_version_and_help_import_no_heavy_module() -> None:
    assert _loaded_after(["--version"]) == "[]"
    assert _loaded_after(["--help"]) == "[]"


def test_a_subcommand_loads_only_what_it_needs() -> None:
    # `validate` needs the config models (pydantic) but not the inference stack
    loaded = _loaded_after(["validate", "--help"])
    assert "pydantic" in loaded and "onnxruntime" not in loaded
