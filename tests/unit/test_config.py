"""Config loading: every bad-input class gets a line-numbered error; all errors at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.commands.schema import config_schema_text
from agent.configfile import ConfigError, load_config, parse_config
from agent.configfile.root import AgentConfig
from tests.conftest import REPO

BASE = """\
site: plant
agent_id: box1
state_dir: state
cameras:
  cam1: {type: synthetic, seed: 1}
models:
  m1: {path: model}
plcs:
  p1: {type: modbus, host: 127.0.0.1, port: 5020}
sinks:
  s1: {type: file, dir: drop}
lines:
  l1:
    stations:
      st1:
        camera: cam1
        model: m1
        plc: p1
        sinks: [s1]
        signals: {stop_request: "coil:0", defect_code: "hr:10"}
        rules:
          - {class: scratch, min_score: 0.7, k: 2, n: 3, action: stop, defect_code: 101}
"""


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.onnx").write_bytes(b"x")
    return tmp_path


def errors(text: str, base_dir: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "t.yaml", base_dir, env or {})
    return [i.format("t.yaml") for i in exc.value.issues]


def test_base_config_is_valid(base_dir: Path) -> None:
    loaded = parse_config(BASE, "t.yaml", base_dir, {})
    st = loaded.config.lines["l1"].stations["st1"]
    assert st.rules[0].defect_class == "scratch" and st.rules[0].k == 2
    assert loaded.resolve("drop") == (base_dir / "drop").resolve()


def test_malformed_yaml_names_line(base_dir: Path) -> None:
    errs = errors(BASE + "  bad: [unclosed\n", base_dir)
    assert len(errs) == 1 and "malformed YAML" in errs[0] and "t.yaml:24" in errs[0]


def test_unknown_key_suggests_nearest(base_dir: Path) -> None:
    errs = errors(BASE.replace("seed: 1", "sed: 1"), base_dir)
    assert errs == ["t.yaml:5: cameras.cam1.sed: unknown key 'sed'; did you mean 'seed'?"]


def test_wrong_type_names_key_and_value(base_dir: Path) -> None:
    errs = errors(BASE.replace("port: 5020", "port: lots"), base_dir)
    assert len(errs) == 1 and errs[0].startswith("t.yaml:9: plcs.p1.port:") and "'lots'" in errs[0]


def test_missing_required_field(base_dir: Path) -> None:
    errs = errors(BASE.replace("agent_id: box1\n", ""), base_dir)
    assert errs == ["t.yaml: agent_id: required key is missing"] or errs == [
        "t.yaml:1: agent_id: required key is missing"
    ]


def test_dangling_references(base_dir: Path) -> None:
    text = BASE.replace("camera: cam1", "camera: cam9").replace("sinks: [s1]", "sinks: [s1, mqtt]")
    errs = errors(text, base_dir)
    assert "t.yaml:16: lines.l1.stations.st1.camera: unknown camera 'cam9' (known cameras: cam1)" in errs
    assert any("stations.st1.sinks.1: unknown sink 'mqtt'" in e and e.startswith("t.yaml:19") for e in errs)


def test_duplicate_plc_address(base_dir: Path) -> None:
    text = BASE + """\
      st2:
        camera: cam1
        model: m1
        plc: p1
        signals: {stop_request: "coil:0"}
"""
    errs = errors(text, base_dir)
    assert errs == [
        "t.yaml:27: lines.l1.stations.st2.signals.stop_request: PLC address 'coil:0' on plc 'p1' "
        "is already written by lines.l1.stations.st1.signals.stop_request"
    ]


def test_overlapping_32bit_register_is_a_duplicate(base_dir: Path) -> None:
    text = BASE.replace('defect_code: "hr:10"', 'defect_code: "hr:10", last_event_seq: "hr:9:u32"')
    errs = errors(text, base_dir)
    assert len(errs) == 1 and "already written" in errs[0]


def test_modbus_address_out_of_range_and_read_only(base_dir: Path) -> None:
    errs = errors(BASE.replace('"coil:0"', '"coil:70000"').replace('"hr:10"', '"ir:10"'), base_dir)
    assert any("out of range" in e and "stop_request" in e for e in errs)
    assert any("read-only" in e and "defect_code" in e for e in errs)


def test_unreadable_secret_file(base_dir: Path) -> None:
    text = BASE.replace("{type: modbus,", "{type: modbus, timeout_ms: 100,").replace(
        "sinks:\n  s1:", "sinks:\n  m:\n    type: mqtt\n    host: h\n    password: ${file:nope}\n  s1:")
    errs = errors(text, base_dir)
    assert len(errs) == 1 and "sinks.m.password: cannot read secret file" in errs[0]
    assert errs[0].startswith("t.yaml:14:")


def test_secret_from_env_is_not_printed(base_dir: Path) -> None:
    text = BASE.replace("sinks:\n  s1:", "sinks:\n  m:\n    type: mqtt\n    host: h\n    password: ${env:PW}\n  s1:")
    loaded = parse_config(text, "t.yaml", base_dir, {"PW": "hunter2"})
    sink = loaded.config.sinks["m"]
    assert sink.password is not None and sink.password.get_secret_value() == "hunter2"  # type: ignore[union-attr]
    assert "hunter2" not in repr(loaded.config) and "hunter2" not in str(loaded.config)


def test_systemd_credential(base_dir: Path, tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt").write_text("s3cret\n")
    text = BASE.replace("sinks:\n  s1:", "sinks:\n  m:\n    type: mqtt\n    host: h\n    password: ${cred:mqtt}\n  s1:")
    loaded = parse_config(text, "t.yaml", base_dir, {"CREDENTIALS_DIRECTORY": str(creds)})
    assert loaded.config.sinks["m"].password.get_secret_value() == "s3cret"  # type: ignore[union-attr]


def test_model_path_that_does_not_exist(base_dir: Path) -> None:
    errs = errors(BASE.replace("path: model", "path: nowhere"), base_dir)
    assert len(errs) == 1 and errs[0].startswith("t.yaml:7: models.m1.path: model folder") and "does not exist" in errs[0]


def test_five_mistakes_reported_at_once(base_dir: Path) -> None:
    text = (BASE.replace("seed: 1", "seed: one")            # wrong type, line 5
            .replace("port: 5020", "prot: 5020")            # unknown key, line 9
            .replace("model: m1", "model: m2")              # dangling ref, line 17
            .replace("k: 2, n: 3", "k: 4, n: 3")            # k > n, line 22
            .replace("dir: drop", "dir: drop, format: xml"))  # bad literal, line 11
    errs = errors(text, base_dir)
    assert len(errs) == 5, errs
    lines = sorted(int(e.split(":")[1]) for e in errs)
    assert lines == [5, 9, 11, 17, 22]


def test_deprecated_opcua_policy_refused(base_dir: Path) -> None:
    text = BASE.replace("{type: modbus, host: 127.0.0.1, port: 5020}",
                        "{type: opcua, endpoint: 'opc.tcp://h:4840', security_policy: Basic256}")
    errs = errors(text, base_dir)
    assert any("deprecated" in e for e in errs)


def test_every_field_is_described() -> None:
    schema = AgentConfig.model_json_schema(by_alias=True)
    missing = []
    for name, model in schema["$defs"].items():
        for field, spec in model.get("properties", {}).items():
            if "description" not in spec:
                missing.append(f"{name}.{field}")
    assert not missing


def test_schema_file_in_sync() -> None:
    on_disk = (REPO / "config" / "agent.schema.json").read_text()
    assert json.loads(on_disk) == json.loads(config_schema_text()), (
        "config/agent.schema.json is stale: run `edge-agent schema > config/agent.schema.json`")


def test_config_reference_in_sync() -> None:
    from agent.configfile.reference import config_reference

    on_disk = (REPO / "docs" / "config-reference.md").read_text()
    assert on_disk == config_reference(), (
        "docs/config-reference.md is stale: run `edge-agent schema --markdown > "
        "docs/config-reference.md`")
    assert "| `latency_budget_ms` |" in on_disk and "## StationConfig" in on_disk


@pytest.mark.parametrize("name", ["demo.yaml", "example-line.yaml"])
def test_shipped_configs_validate(name: str) -> None:
    load_config(REPO / "config" / name)


def test_cli_validate_exit_codes(base_dir: Path) -> None:
    good = base_dir / "good.yaml"
    good.write_text(BASE)
    bad = base_dir / "bad.yaml"
    bad.write_text(BASE.replace("seed: 1", "sed: 1"))
    ok = subprocess.run([sys.executable, "-m", "agent", "validate", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    ko = subprocess.run([sys.executable, "-m", "agent", "validate", str(bad)], capture_output=True, text=True)
    assert ko.returncode == 2 and "bad.yaml:5: cameras.cam1.sed: unknown key" in ko.stderr
