"""Hostile or broken config files: bounded work, a line-numbered error, no secret echoed (issue 16)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agent.config.files import MAX_CONFIG_BYTES
from agent.config.yaml_limits import MAX_DEPTH
from agent.configfile import ConfigError, load_config, parse_config
from tests.unit.test_config import BASE, errors


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.onnx").write_bytes(b"x")
    return tmp_path


def alias_bomb(levels: int = 9) -> str:
    text = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, levels):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n"
    return text


def test_alias_bomb_refused_at_its_line_without_expanding(base_dir: Path) -> None:
    t0 = time.perf_counter()
    errs = errors(BASE + alias_bomb(), base_dir)
    assert time.perf_counter() - t0 < 0.5
    assert len(errs) == 1 and "more than 50,000 nodes" in errs[0], errs
    # a4 (line 27) repeats a3 (7,381 nodes) nine times: past the limit at its seventh alias
    assert errs[0].startswith("t.yaml:27:")


def test_recursive_alias_refused(base_dir: Path) -> None:
    errs = errors(BASE + "x-loop: &loop\n  - 1\n  - *loop\n", base_dir)
    assert len(errs) == 1 and "recursive alias" in errs[0] and errs[0].startswith("t.yaml:25:"), errs


def test_deep_nesting_refused(base_dir: Path) -> None:
    errs = errors(BASE + "x-deep: " + "[" * 5000 + "]" * 5000 + "\n", base_dir)
    assert errs == [f"t.yaml:23: refused: nested deeper than {MAX_DEPTH} levels"]


def test_merge_keys_work_own_keys_win(base_dir: Path) -> None:
    text = ("x-plc: &plc {type: modbus, host: 10.0.0.9, port: 502, timeout_ms: 300}\n"
            + BASE.replace("  p1: {type: modbus, host: 127.0.0.1, port: 5020}\n",
                           "  p1:\n    <<: *plc\n    port: 5020\n"
                           "  p2:\n    <<: [{timeout_ms: 150}, *plc]\n"))
    cfg = parse_config(text, "t.yaml", base_dir, {}).config
    p1, p2 = cfg.plcs["p1"], cfg.plcs["p2"]
    assert (p1.host, p1.port, p1.timeout_ms) == ("10.0.0.9", 5020, 300)  # type: ignore[union-attr]
    assert (p2.port, p2.timeout_ms) == (502, 150)  # type: ignore[union-attr]


def test_error_in_a_merged_value_names_the_anchor_line(base_dir: Path) -> None:
    text = ("x-plc: &plc {type: modbus, host: 10.0.0.9, port: lots}\n"
            + BASE.replace("  p1: {type: modbus, host: 127.0.0.1, port: 5020}\n",
                           "  p1:\n    <<: *plc\n"))
    errs = errors(text, base_dir)
    assert len(errs) == 1 and errs[0].startswith("t.yaml:1: plcs.p1.port:"), errs


def test_merge_of_a_scalar_is_an_error(base_dir: Path) -> None:
    errs = errors(BASE.replace("cam1: {type: synthetic, seed: 1}",
                               "cam1: {type: synthetic, seed: 1, <<: 3}"), base_dir)
    assert any(e.startswith("t.yaml:5:") and "merge key" in e for e in errs), errs


@pytest.mark.parametrize("tagged", ["seed: !env SEED", "seed: !!python/object:os.system 1",
                                    "seed: !!set {1, 2}"])
def test_custom_tag_names_its_line(base_dir: Path, tagged: str) -> None:
    errs = errors(BASE.replace("seed: 1", tagged), base_dir)
    assert len(errs) == 1 and errs[0].startswith("t.yaml:5: cameras.cam1.seed: unsupported tag"), errs


def test_explicit_standard_tag_that_does_not_fit(base_dir: Path) -> None:
    errs = errors(BASE.replace("seed: 1", "seed: !!int one"), base_dir)
    assert errs == ["t.yaml:5: cameras.cam1.seed: 'one' is not a valid !!int"]


def test_control_character_names_its_line(base_dir: Path) -> None:
    errs = errors(BASE.replace("seed: 1", "seed: 1\x00"), base_dir)
    assert len(errs) == 1 and errs[0].startswith("t.yaml:5:") and "#x0000" in errs[0], errs


def test_not_utf8_names_its_line(base_dir: Path) -> None:
    path = base_dir / "latin1.yaml"
    path.write_bytes(BASE.replace("site: plant", "site: usine # Défaut").encode("latin-1"))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert [i.line for i in exc.value.issues] == [1] and "not UTF-8" in exc.value.render()


def test_size_limit(base_dir: Path) -> None:
    path = base_dir / "big.yaml"
    path.write_text(BASE + "# " + "x" * MAX_CONFIG_BYTES + "\n")
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert time.perf_counter() - t0 < 0.5 and "over the 1 MiB limit" in exc.value.render()


def test_config_that_is_not_a_regular_file(base_dir: Path) -> None:
    fifo = base_dir / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as exc:
        load_config(fifo)
    assert "a FIFO, not a regular file" in exc.value.render()


@pytest.mark.parametrize("target", ["fifo", "/dev/zero", "big"])
def test_secret_file_regular_and_bounded(base_dir: Path, target: str) -> None:
    os.mkfifo(base_dir / "fifo")
    (base_dir / "big").write_text("s" * (65 * 1024))
    text = BASE.replace("sinks:\n  s1:", "sinks:\n  m:\n    type: mqtt\n    host: h\n"
                        f"    password: ${{file:{target}}}\n  s1:")
    errs = errors(text, base_dir)
    reason = {"fifo": "a FIFO, not a regular file", "/dev/zero": "a character device",
              "big": "over the 64 KiB limit"}[target]
    assert len(errs) == 1 and errs[0].startswith("t.yaml:14: sinks.m.password:"), errs
    assert reason in errs[0]


def test_secret_in_a_plain_field_is_never_echoed(base_dir: Path) -> None:
    (base_dir / "secret").write_text("hunter2-s3cret\n")
    text = BASE.replace("port: 5020", 'port: "${file:secret}"').replace(
        "camera: cam1", "camera: ${file:secret}")
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "t.yaml", base_dir, {})
    rendered = exc.value.render() + exc.value.one_line() + repr(exc.value.issues)
    assert "hunter2" not in rendered
    assert "t.yaml:9: plcs.p1.port:" in rendered and "t.yaml:16: lines.l1.stations.st1.camera" in rendered
