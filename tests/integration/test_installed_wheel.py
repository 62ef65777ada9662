"""The installed release works as the checkout does (issue 23).

The wheel of this checkout is installed by systemd/install.sh into a fresh venv under a
--prefix outside the source tree, and every command runs from another directory. The
release venv gets only the wheel (`pip install --no-deps --no-index`); its dependencies
come from the venv running the tests through a .pth line, which adds that
site-packages folder as a plain path: its editable-install hook (a .pth of its own)
does not run, so `agent` and `plc` can only come from the wheel (checked).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.configfile import load_config
from tests.conftest import REPO
from tests.e2e.harness import dropped_records
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port, wait_port


@dataclass(frozen=True)
class Release:
    root: Path  # the --prefix
    exe: Path  # .../opt/edge-agent/current/venv/bin/edge-agent
    python: Path
    example: Path  # .../etc/edge-agent/agent.yaml.example
    unit: Path
    cwd: Path  # somewhere else than the checkout
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.exe), *args], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self, log: Path, *args: str) -> subprocess.Popen[bytes]:
        """A long-running command, its output into `log`."""
        with log.open("wb") as out:
            return subprocess.Popen([str(self.exe), *args], cwd=self.cwd, env=self.env,
                                    stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes] | None) -> int | None:
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(15)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, release_wheel: Path) -> Release:
    base = tmp_path_factory.mktemp("installed")
    root = base / "root"
    result = subprocess.run(
        ["bash", str(REPO / "systemd/install.sh"), "install", "--wheel", str(release_wheel),
         "--prefix", str(root), "--no-start", "--pip-args", "--no-deps --no-index"],
        capture_output=True, text=True, timeout=300, cwd=base)
    assert result.returncode == 0, result.stdout + result.stderr
    venv = root / "opt/edge-agent/current/venv"
    [site] = venv.glob("lib/python3*/site-packages")
    (site / "zz-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "NOTIFY_SOCKET")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    cwd = base / "elsewhere"
    cwd.mkdir()
    return Release(root, venv / "bin/edge-agent", venv / "bin/python",
                   root / "etc/edge-agent/agent.yaml.example",
                   root / "etc/systemd/system/edge-agent.service", cwd, env)


def test_version_and_the_code_comes_from_the_wheel(release: Release) -> None:
    out = release.run("--version")
    version = re.search(r'(?m)^version = "(.*)"$', (REPO / "pyproject.toml").read_text())
    assert out.returncode == 0 and out.stdout.strip() == f"edge-agent {version and version[1]}"
    where = subprocess.run([str(release.python), "-c", "import agent, plc, agent.data as d; "
                            "print(agent.__file__, plc.__file__, d.data_path())"],
                           cwd=release.cwd, env=release.env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    for path in where.stdout.split():
        assert Path(path).resolve().is_relative_to(release.root / "opt/edge-agent/releases"), \
            where.stdout
        assert not Path(path).resolve().is_relative_to(REPO), where.stdout


def test_validate_the_installed_example(release: Release) -> None:
    out = release.run("validate", str(release.example))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK (1 camera(s), 1 model(s), 1 PLC(s), 2 sink(s), 1 station(s))" in out.stdout


def _writable_dirs(unit: Path) -> list[Path]:
    """What ProtectSystem=strict leaves writable: the unit's *Directory= and ReadWritePaths=."""
    bases = {"StateDirectory": "/var/lib", "CacheDirectory": "/var/cache",
             "LogsDirectory": "/var/log", "RuntimeDirectory": "/run"}
    out: list[Path] = []
    for line in unit.read_text().splitlines():
        key, _, value = line.partition("=")
        if key in bases:
            out += [Path(bases[key]) / v for v in value.split()]
        elif key == "ReadWritePaths":
            out += [Path(v.lstrip("-")) for v in value.split()]
        elif key == "PrivateTmp" and value == "yes":
            out += [Path("/tmp"), Path("/var/tmp")]
    return out


def _path_strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for v in node.values():
            yield from _path_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _path_strings(v)
    elif isinstance(node, str) and "/" in node and "://" not in node:
        yield node


def test_every_path_of_the_installed_example_fits_the_unit(release: Release) -> None:
    """Written paths inside the unit's writable directories, the model from the release,
    and no other path (a relative one would resolve against read-only /etc/edge-agent)."""
    writable = _writable_dirs(release.unit)
    assert Path("/var/lib/edge-agent") in writable
    cfg = load_config(release.example).config
    written = [cfg.state_dir] + [s.dir for s in cfg.sinks.values() if s.type == "file"]
    read = [m.path for m in cfg.models.values()]
    for p in written:
        assert any(Path(p).is_relative_to(w) for w in writable), f"{p} is not writable: {writable}"
    for p in read:
        assert Path(p).is_relative_to(release.root / "opt/edge-agent/current/models"), p
        assert (Path(p) / "model.onnx").is_file()
    raw = yaml.safe_load(release.example.read_text())
    assert sorted(_path_strings(raw)) == sorted(written + read)
    assert all(Path(p).is_absolute() for p in written + read)


def test_plc_sim_serves_modbus_and_opcua(release: Release, tmp_path: Path) -> None:
    mport, oport = free_port(), free_port()
    log = tmp_path / "plc-sim.log"
    sim = release.start(log, "plc-sim", "--modbus-port", str(mport), "--opcua-port", str(oport))
    try:
        wait_port(mport, 30)
        wait_port(oport, 30)
        running = asyncio.run(_read_conveyor_running(mport, oport))
        assert running == (True, True)
    finally:
        rc = _stop(sim)
    assert rc == 0 and "conveyor=RUN" in log.read_text(), log.read_text()[-3000:]


async def _read_conveyor_running(mport: int, oport: int) -> tuple[bool, bool]:
    from asyncua import Client
    from pymodbus.client import AsyncModbusTcpClient

    mb = AsyncModbusTcpClient("127.0.0.1", port=mport, timeout=5)
    try:
        assert await mb.connect()
        coils = await mb.read_coils(32, count=1, device_id=1)  # plant.conveyor_running
        assert not coils.isError(), coils
    finally:
        mb.close()
    async with Client(f"opc.tcp://127.0.0.1:{oport}/edge-agent/softplc", timeout=10) as ua:
        idx = await ua.get_namespace_index("urn:edge-agent:softplc")
        node = ua.get_node(f"ns={idx};s=Line1.ConveyorRunning")
        value = await node.read_value()
    return bool(coils.bits[0]), bool(value)


def test_demo_runs_from_the_installed_package(release: Release) -> None:
    out = release.run("demo", "--duration", "10", timeout=90)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "edge-agent demo summary" in out.stdout
    assert re.search(r"Web console: http://127\.0\.0\.1:9310/console/  \(token: \S+\)",
                     out.stdout), out.stdout[:2000]
    state = release.cwd / "var/demo"  # under the current directory, not in the venv
    assert (state / "outbox.sqlite3").is_file() and (state / "audit.jsonl").is_file()
    assert dropped_records(state / "drop"), sorted(p.name for p in (state / "drop").iterdir())
    site = release.root / "opt/edge-agent/current/venv"
    assert not list(site.rglob("var")), "the demo wrote into the release venv"


def test_bench_the_bundled_model(release: Release) -> None:
    model = release.root / "opt/edge-agent/current/models/defect-cnn"
    out = release.run("bench", "--model", str(model), "--frames", "30",
                      "--providers", "CPUExecutionProvider")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "model defect-cnn 1.0.0 (classification" in out.stdout
    assert "CPUExecutionProvider (active: CPUExecutionProvider)" in out.stdout
    default = release.run("bench", "--frames", "10", "--providers", "CPUExecutionProvider")
    assert default.returncode == 0, default.stdout + default.stderr
    assert re.search(r"from \S+/site-packages/agent/data/models/defect-cnn\n", default.stdout)


def test_run_the_installed_example_against_the_soft_plc(release: Release, tmp_path: Path,
                                                       mosquitto: Mosquitto) -> None:
    """The installed example as it is, but for what a test box must change: ports and
    /var/lib/edge-agent (the unit's StateDirectory) in a temporary folder."""
    mport, oport, hport = free_port(), free_port(), free_port()
    state = tmp_path / "state"
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(release.example.read_text()
                   .replace("/var/lib/edge-agent", str(state))
                   .replace("port: 5020", f"port: {mport}")
                   .replace("port: 1883", f"port: {mosquitto.port}")
                   .replace("127.0.0.1:9310", f"127.0.0.1:{hport}"))
    sim_log, agent_log = tmp_path / "plc-sim.log", tmp_path / "agent.log"
    sim = release.start(sim_log, "plc-sim", "--modbus-port", str(mport), "--opcua-port", str(oport))
    agent = None
    try:
        wait_port(mport, 30)
        agent = release.start(agent_log, "run", "--config", str(cfg))
        deadline = time.monotonic() + 45
        healthz, records = None, []
        while time.monotonic() < deadline and not (healthz == 200 and records):
            assert agent.poll() is None, agent_log.read_text()[-3000:]
            healthz = _get(f"http://127.0.0.1:{hport}/healthz")
            records = dropped_records(state / "drop") if (state / "drop").is_dir() else []
            time.sleep(0.3)
        assert healthz == 200 and records, (healthz, records, agent_log.read_text()[-3000:])
        assert {r["action"] for r in records} <= {"stop", "reject", "alert"}
        # the console's pages and assets come from the wheel's package data
        login = _body(f"http://127.0.0.1:{hport}/console/login")
        assert login is not None and b'<form method="post" action="/console/login"' in login
        script = _body(f"http://127.0.0.1:{hport}/console/static/console.js")
        assert script is not None and b"/console/live/" in script
        assert _stop(agent) == 0, agent_log.read_text()[-3000:]
    finally:
        _stop(agent)
        _stop(sim)
    # the soft PLC got the agent's commands: a latched stop or counted rejects
    assert re.search(r"latched=1|rejects=[1-9]", sim_log.read_text()), sim_log.read_text()[-2000:]


def _body(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bytes(resp.read())
    except OSError:
        return None


def _get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None
