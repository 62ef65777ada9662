"""docs/runbooks.md has an entry for every alarm the code can emit (issue 24).

The reasons are collected from the code: the registry `agent.alarms.ALARMS`, every
`alarm_text(...)` call in agent/ (each names a registered alarm), every reason the
station monitor returns, the `records_lost` causes, the rollback guards, the operator
command rejection codes and the camera states that end inspection."""

from __future__ import annotations

import ast
import re
import typing

import pytest

from agent.alarms import ALARMS
from agent.capture.base import SourceState
from agent.decision.payloads import OutboxLossPayload
from agent.runtime.model_guard import GUARDS
from tests.conftest import REPO

DOC = (REPO / "docs" / "runbooks.md").read_text()


def section(key: str) -> str:
    m = re.search(rf"^### `{re.escape(key)}`\n(.*?)(?=^##|\Z)", DOC, re.S | re.M)
    assert m, f"docs/runbooks.md has no entry for alarm {key!r}"
    return m.group(1)


@pytest.mark.parametrize("key", sorted(ALARMS))
def test_every_registered_alarm_has_its_runbook_entry(key: str) -> None:
    a, body = ALARMS[key], section(key)
    assert f"- **Alarm text:** `{a.text}`" in body
    assert f"- **Metric:** `{a.metric}`" in body and f"- **Command:** `{a.command}`" in body
    assert "- **What to do:** " in body and len(body.split("What to do:** ")[1]) > 40
    assert DOC.index(f"## {a.title}\n") < DOC.index(f"### `{key}`")


@pytest.mark.parametrize("key", sorted(ALARMS))
def test_the_text_is_what_its_module_emits(key: str) -> None:
    a = ALARMS[key]
    source = (REPO / a.source).read_text()
    if f'alarm_text("{key}"' in source:
        return
    for fragment in re.split(r"\{[a-z_]+\}", a.text):  # the fixed words, in the module
        fragment = fragment.strip(" :")
        if len(fragment) >= 4:
            assert fragment in source.replace("%s", "").replace("%d", ""), (key, fragment)


def _alarm_text_calls() -> list[tuple[str, str | None]]:
    calls = []
    for path in (REPO / "agent").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "alarm_text":
                arg = node.args[0] if node.args else None
                key = arg.value if isinstance(arg, ast.Constant) else None
                calls.append((str(path.relative_to(REPO)), key))
    return calls


def test_every_alarm_text_call_names_a_registered_alarm() -> None:
    calls = _alarm_text_calls()
    assert len(calls) >= 5
    for where, key in calls:
        assert key in ALARMS, f"{where}: alarm_text({key!r}) is not in agent/alarms.py"


def test_every_station_monitor_reason_comes_from_the_registry() -> None:
    tree = ast.parse((REPO / "agent" / "pipeline" / "station.py").read_text())
    fn = next(n for n in ast.walk(tree)
              if isinstance(n, ast.FunctionDef) and n.name == "impossible_reason")
    returns = [r.value for r in ast.walk(fn) if isinstance(r, ast.Return)]
    reasons = [r for r in returns if not (isinstance(r, ast.Constant) and r.value is None)]
    assert reasons and all(isinstance(r, ast.Call) and getattr(r.func, "id", "") == "alarm_text"
                           for r in reasons), "a reason not built with alarm_text"


def test_enumerated_reasons_are_each_named_in_their_entry() -> None:
    causes = typing.get_args(OutboxLossPayload.model_fields["cause"].annotation)
    assert causes and all(c in section("records_lost") for c in causes)
    assert all(g in section("model_rolled_back") for g in GUARDS)
    pairs = re.findall(r'code="([a-z]+)"|return "([a-z]+)", ',
                       (REPO / "agent/protocols/mqtt/commands.py").read_text())
    flat = {c for pair in pairs for c in pair if c and c != "accepted"} | {"replay"}
    assert {"malformed", "unauthenticated", "invalid", "client", "stale", "future"} <= flat
    assert all(c in section("command_rejected") for c in flat), flat
    ending = [s.value for s in SourceState if s not in (SourceState.STREAMING,
                                                         SourceState.CONNECTING)]
    assert all(s in DOC for s in ending)


def test_the_issue_list_of_alarms_is_covered() -> None:
    titles = set(re.findall(r"^## (.+)$", DOC, re.M))
    for wanted in ("Camera lost or frozen", "PLC unreachable or refusing",
                   "Broker down, outbox filling", "Disk full", "Provider fallback", "Drift",
                   "Model rolled back", "Replayed or forged command", "Records lost"):
        assert wanted in titles


def test_metrics_named_are_in_the_metrics_reference() -> None:
    from agent.health.metrics_doc import rows

    exported = {name for name, *_ in rows()}
    for key, a in ALARMS.items():
        for metric in re.findall(r"edge_agent_[a-z_]+", a.metric):
            assert metric in exported, (key, metric, "not in docs/metrics.md")


# where a `raised` alarm's reason is made, for the modules that only pass one on
REASON_MADE_IN = {"agent/decision/failsafe.py": "agent/pipeline/station.py"}
RAISES = re.compile(r'(?<!def )(alarm\w*\(\s*(?:[\w.]+,\s*)*"raised"|rollback_alarm\(|outbox_loss\()')


def test_every_module_that_raises_an_alarm_has_its_alarms_registered() -> None:
    sources = {a.source for a in ALARMS.values()}
    raising = sorted(str(p.relative_to(REPO)) for p in (REPO / "agent").rglob("*.py")
                     if p.name != "alarms.py" and RAISES.search(p.read_text()))
    assert "agent/evidence/capture.py" in raising and "agent/runtime/plc_health.py" in raising
    for module in raising:
        made = REASON_MADE_IN.get(module, module)
        if module == "agent/runtime/outbox_alarms.py":
            made = "agent/outbox/store.py"  # records_lost: the loss is described there
        assert made in sources, f"{module} raises an alarm with no entry in agent/alarms.py"
