"""SIGHUP with bad files on a running daemon (issue 16): the file is parsed off the event loop
(the loop keeps its beat), every failure is refused and audited in one line, the log holds no
config text, no secret and no "Task exception was never retrieved", and a good file still
applies afterwards."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import Daemon, write_config
from tests.support.ports import free_port
from tests.support.waiting import wait_for as _wait
from tests.unit.test_config_limits import alias_bomb

MARKER = "configtextmarker"


def bad_files(good: str) -> dict[str, tuple[bytes, str]]:
    """name -> (file content, what the refusal must say)."""
    slow = (good + "x-pad: [" + "1, " * 20000 + "]\n"  # ~2 s of parsing on a small box
            + f"x-text: {MARKER} " + "lorem ipsum " * 70000 + "\nbogus_key: 1\n")
    return {
        "slow": (slow.encode(), "unknown key 'bogus_key'"),
        "latin1": (good.replace("site: e2e", "site: e2e # Défaut").encode("latin-1"),
                   "agent.yaml:1: not UTF-8"),
        "bomb": ((good + alias_bomb(9)).encode(), "refused: the document expands"),
        "deep": ((good + "x-deep: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
                 "refused: nested deeper"),
        "secret": (_in_plc(good, r"port: \d+", "port: '${file:secret}'"), "plcs.softplc.port"),
        "fifo": (_in_plc(good, r"host: 127\.0\.0\.1", "host: ${file:fifo}"),
                 "a FIFO, not a regular file"),
    }


def _in_plc(text: str, pattern: str, new: str) -> bytes:
    """`text` with the first match of `pattern` in the soft PLC's section replaced."""
    at = text.index("softplc:")
    return (text[:at] + re.sub(pattern, new, text[at:], count=1)).encode()


def test_sighup_bad_files_refused_off_the_loop(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, mqtt_port=free_port(), modbus_port=free_port(), fps=10)
    good = cfg.read_text()
    (tmp_path / "secret").write_text("hunter2-s3cret\n")
    os.mkfifo(tmp_path / "fifo")
    daemon = Daemon(cfg)
    try:
        daemon.wait_started()
        time.sleep(1.0)
        before = _lag_max(daemon)
        for name, (content, says) in bad_files(good).items():
            cfg.write_bytes(content)
            n = len(_reloads(daemon))
            t0 = time.monotonic()
            daemon.proc.send_signal(signal.SIGHUP)
            _wait(lambda n=n: len(_reloads(daemon)) > n, 30, name)  # type: ignore[misc]
            refused = _reloads(daemon)[-1]
            assert refused["ok"] is False and says in refused["error"], (name, refused)
            assert "\n" not in refused["error"] and "agent.yaml:" in refused["error"], refused
            print(f"{name}: refused after {time.monotonic() - t0:.2f} s")
        lag = _lag_max(daemon)
        print(f"event-loop lag max: {before:.3f} s before, {lag:.3f} s after the reloads")
        assert lag < 1.0, f"the event loop was blocked {lag:.2f} s during the reloads"
        assert daemon.proc.poll() is None
        assert "config" in json.loads(daemon.get("/healthz")[1])["failing"]

        cfg.write_text(good)  # a good file still applies, and clears the failing check
        daemon.proc.send_signal(signal.SIGHUP)
        _wait(lambda: _reloads(daemon)[-1]["ok"] is True, 30, "good reload")
        rc, _ = daemon.terminate()
        assert rc == 0
        log = daemon.log_path.read_text(errors="replace")
        assert "Task exception was never retrieved" not in log and "Traceback" not in log
        assert "hunter2" not in log and MARKER not in log and "lorem" not in log
        assert "hunter2" not in (cfg.parent / "state" / "audit.jsonl").read_text()
        refusals = [json.loads(line) for line in log.splitlines() if "reload refused" in line]
        assert len(refusals) == 6 and all("\n" not in r["msg"] for r in refusals), refusals
    finally:
        daemon.ensure_dead()


def _reloads(daemon: Daemon) -> list[dict[str, object]]:
    """The reload audit records (read from state/: the config may not parse right now)."""
    path = daemon.config.parent / "state" / "audit.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [a for a in records if a["event"] == "config_reload"]


def _lag_max(daemon: Daemon) -> float:
    code, body = daemon.get("/metrics")
    assert code == 200
    for family in text_string_to_metric_families(body.decode()):
        if family.name == "edge_agent_loop_lag_max_seconds":
            return float(family.samples[0].value)
    raise AssertionError("no edge_agent_loop_lag_max_seconds metric")
