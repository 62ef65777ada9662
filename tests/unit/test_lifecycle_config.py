"""Station settings of the model lifecycle: `shadow` names a configured model, the
guard and shadow options are checked with the key named."""

from __future__ import annotations

from pathlib import Path

from agent.configfile import parse_config
from tests.unit.test_config import BASE, base_dir, errors  # noqa: F401 - fixture

SHADOW = BASE.replace("        model: m1\n", "        model: m1\n        shadow: m2\n")


def test_shadow_must_name_a_configured_model(base_dir: Path) -> None:  # noqa: F811
    errs = errors(SHADOW, base_dir)
    assert any("lines.l1.stations.st1.shadow: unknown model 'm2' (known models: m1)" in e
               for e in errs), errs


def test_shadow_and_guard_settings_parse(base_dir: Path) -> None:  # noqa: F811
    text = SHADOW.replace("  m1: {path: model}\n", "  m1: {path: model}\n  m2: {path: model}\n")
    text = text.replace("        shadow: m2\n", "        shadow: m2\n        model_guard: "
                        "{window_s: 60, max_errors: 2}\n        shadow_options: {max_busy: 0.5}\n")
    st = parse_config(text, "t.yaml", base_dir, {}).config.lines["l1"].stations["st1"]
    assert st.shadow == "m2" and st.model_guard.window_s == 60 and st.model_guard.max_errors == 2
    assert st.shadow_options.max_busy == 0.5 and st.model_guard.min_frames == 200


def test_bad_guard_values_name_the_key(base_dir: Path) -> None:  # noqa: F811
    text = BASE.replace("        model: m1\n", "        model: m1\n        model_guard: "
                        "{window_s: -1, defect_rate_band: 2}\n")
    errs = errors(text, base_dir)
    assert any("model_guard.window_s" in e for e in errs), errs
    assert any("model_guard.defect_rate_band" in e for e in errs), errs
