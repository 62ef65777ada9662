"""The systemd unit (systemd-analyze verify / security) and install.sh under a --prefix."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.release import build_wheel, export_repo

UNIT = REPO / "systemd" / "edge-agent.service"
INSTALL = REPO / "systemd" / "install.sh"
MAX_EXPOSURE = 2.5


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is missing: scripts/setup.sh installs Debian's systemd package"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)


def _unit_under(root: Path) -> Path:
    """The shipped unit with /opt/edge-agent below `root`, where a stub executable stands."""
    exe = root / "opt/edge-agent/current/venv/bin/edge-agent"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    unit = root / "edge-agent.service"
    unit.write_text(UNIT.read_text().replace("/opt/edge-agent/", f"{root}/opt/edge-agent/"))
    return unit


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = _analyze("verify", str(_unit_under(tmp_path)))
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_unit_exposure_is_at_most_2_5(tmp_path: Path) -> None:
    result = _analyze("security", "--offline=true", str(_unit_under(tmp_path)))
    assert result.returncode == 0, result.stderr
    m = re.search(r"Overall exposure level for edge-agent\.service: (\d+\.\d+)", result.stdout)
    assert m, result.stdout[-2000:]
    print(f"systemd-analyze security exposure: {m.group(1)}")
    assert float(m.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_has_the_required_settings() -> None:
    d = _directives(UNIT.read_text())
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert float(d["WatchdogSec"][0]) > 0
    assert d["Restart"] == ["on-failure"]
    assert d["StateDirectory"] == ["edge-agent"]
    assert d["User"] == ["edge-agent"] and "DynamicUser" not in d
    assert d["LoadCredential"] == ["secret:/etc/edge-agent/credentials"]
    assert d["ExecStart"][0].startswith("/opt/edge-agent/current/venv/bin/edge-agent run ")
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["DevicePolicy"] == ["closed"]
    for allowed in d["DeviceAllow"]:  # cameras and NVIDIA GPUs only
        assert re.fullmatch(r"(char-video4linux|char-nvidia[-a-z]*|/dev/nvidia[-a-z]*) rw",
                            allowed), allowed
    assert d["CapabilityBoundingSet"] == [""] and d["NoNewPrivileges"] == ["yes"]
    assert d["ProtectSystem"] == ["strict"]


def _install(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory, release_wheel: Path) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("wheels")
    new = build_wheel(export_repo(base / "src-new", "99.0.0"), base / "new")
    return release_wheel, new


def test_install_upgrade_rollback_uninstall_under_a_prefix(tmp_path: Path, wheels) -> None:
    old, new = wheels
    root = tmp_path / "root"
    opt, etc = root / "opt/edge-agent", root / "etc/edge-agent"
    unit = root / "etc/systemd/system/edge-agent.service"
    offline = ["--prefix", str(root), "--pip-args", "--no-deps --no-index"]

    dry = _install("install", "--wheel", str(old), "--dry-run", *offline)
    assert not root.exists(), "--dry-run changed the file system"
    assert "useradd" in dry.stdout and "python3 -m venv" in dry.stdout

    out = _install("install", "--wheel", str(old), *offline).stdout
    assert "skip (--prefix): useradd" in out and "skip (--prefix): systemctl" in out
    current = (opt / "current").resolve()
    assert current.name.startswith("0.1.0-")
    assert (current / "venv/bin/edge-agent").is_file() and (current / "RELEASE").is_file()
    assert (current / "models").is_dir()
    assert (etc / "credentials").stat().st_mode & 0o777 == 0o700
    assert "state_dir: /var/lib/edge-agent" in (etc / "agent.yaml.example").read_text()
    assert not (etc / "agent.yaml").exists()  # never written: the operator's file
    assert f"ExecStart={opt}/current/venv/bin/edge-agent run --config {etc}/agent.yaml" \
        in unit.read_text()
    verify = _analyze("verify", str(unit))  # the installed unit runs the installed venv
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr

    (etc / "agent.yaml").write_text("site: mine\n")
    unit_mtime = unit.stat().st_mtime_ns
    again = _install("install", "--wheel", str(old), "--no-start", *offline).stdout  # idempotent
    assert "already built" in again and "already current" in again and "venv" not in again
    assert unit.stat().st_mtime_ns == unit_mtime and (etc / "agent.yaml").read_text() == "site: mine\n"

    # A config the release cannot validate (this test venv has no dependencies: even
    # `edge-agent validate` fails) stops the install before any (re)start.
    refused = subprocess.run(["bash", str(INSTALL), "install", "--wheel", str(old), *offline],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "is invalid for this release" in refused.stderr

    _install("upgrade", "--wheel", str(new), "--no-start", *offline)
    assert (opt / "current").resolve().name.startswith("99.0.0-")
    assert (opt / "previous").resolve() == current  # the previous venv is kept

    _install("rollback", "--no-start", *offline)
    assert (opt / "current").resolve() == current
    assert (opt / "previous").resolve().name.startswith("99.0.0-")
    status = _install("status", *offline).stdout
    assert f"current:  {current.name}" in status

    _install("uninstall", *offline)
    assert not opt.exists() and not unit.exists()
    assert (etc / "agent.yaml").exists()  # config and state survive a plain uninstall
    _install("uninstall", "--purge", *offline)
    assert not etc.exists()


def test_install_refuses_bad_input(tmp_path: Path) -> None:
    result = subprocess.run(["bash", str(INSTALL), "install", "--prefix", str(tmp_path),
                             "--wheel", str(tmp_path / "missing.whl")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "no such wheel" in result.stderr
    result = subprocess.run(["bash", str(INSTALL), "rollback", "--prefix", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "no previous release" in result.stderr
