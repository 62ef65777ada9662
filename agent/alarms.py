"""Every alarm the agent can raise: its exact text, where it shows, what to look at and do.

`ALARMS` is the registry docs/runbooks.md is written from (a test checks every entry has
its runbook section with this text, metric and command, and that each text is what its
module really emits). Texts are templates: `{name}` marks the part that varies.
`alarm_text(key, **fields)` is how the station monitor and the model lifecycle build
theirs; the other modules emit the same words (checked against their source).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Alarm:
    title: str  # the runbook section
    text: str  # exact text, `{field}` = the part that varies
    shows: str  # where the operator sees it
    metric: str  # what to look at
    command: str  # what to run first
    source: str  # the module that emits the text (relative to the repository)


ALARMS: dict[str, Alarm] = {
    "camera_state": Alarm(
        "Camera lost or frozen", "camera {state}",
        "alarm record `raised` (reason) after fail_safe.after_s; /healthz `camera:<cam>: state "
        "{state}`; PLC status word bit1 0, heartbeat held",
        "edge_agent_camera_streaming{camera}", "curl -s localhost:9310/healthz",
        "agent/pipeline/station.py"),
    "camera_frozen": Alarm(
        "Camera lost or frozen", "frozen: the same picture for {seconds} s",
        "log (camera state change) and /healthz `camera:<cam>: state stalled`",
        "edge_agent_camera_streaming{camera}", "journalctl -u edge-agent -g frozen",
        "agent/capture/camera.py"),
    "model_failing": Alarm(
        "Model failing", "model failing ({n} consecutive errors)",
        "alarm record `raised`; /healthz `station:<L/S>`; PLC status bit2 0",
        "edge_agent_worker_errors_total{line,station}", "journalctl -u edge-agent -g 'not inspected'",
        "agent/pipeline/station.py"),
    "no_inspection": Alarm(
        "No inspection", "no inspection for {seconds}s",
        "alarm record `raised`; /healthz `station:<L/S>`", "edge_agent_worker_inspected_total",
        "kill -USR2 $(systemctl show -p MainPID --value edge-agent)", "agent/pipeline/station.py"),
    "budget_overrun": Alarm(
        "Latency budget overrun", "latency budget overrun on {n} consecutive frames",
        "alarm record `raised`; /healthz `station:<L/S>`",
        "edge_agent_worker_dropped_late_total, edge_agent_stage_seconds", "edge-agent bench",
        "agent/pipeline/station.py"),
    "plc_refusing": Alarm(
        "PLC unreachable or refusing", "plc {plc} {error}",
        "alarm record `raised` on each station of the PLC; audit `plc_refusing`; /healthz "
        "`heartbeat:<plc>: held: ...`", "edge_agent_plc_refusing_writes{plc}, edge_agent_plc_connected",
        "edge-agent probe /etc/edge-agent/agent.yaml", "agent/runtime/plc_health.py"),
    "plc_down": Alarm(
        "PLC unreachable or refusing", "state {state}",
        "/healthz `plc:<name>: state disconnected`; commands end `expired`",
        "edge_agent_plc_connected{plc}, edge_agent_commands_total{status=expired}",
        "edge-agent probe /etc/edge-agent/agent.yaml", "agent/runtime/health_wiring.py"),
    "broker_down": Alarm(
        "Broker down, outbox filling", "record(s) queued",
        "/healthz `sink:<name>: state disconnected` and `outbox: N record(s) queued`",
        "edge_agent_sink_connected{sink}, edge_agent_outbox_depth{sink}",
        "edge-agent outbox --config /etc/edge-agent/agent.yaml stats",
        "agent/runtime/health_wiring.py"),
    "disk_full": Alarm(
        "Disk full", "disk full: records are lost (counted)",
        "/healthz `outbox: disk full...`; then the `records_lost` alarm",
        "edge_agent_outbox_disk_full, edge_agent_outbox_lost_total{sink}", "df -h /var/lib/edge-agent",
        "agent/runtime/health_wiring.py"),
    "records_lost": Alarm(
        "Records lost", "OUTBOX LOST {n} RECORD(S)",
        "agent-level alarm record `records_lost` (cause missing_at_start, quarantined, "
        "not_stored); audit `outbox_loss`", "edge_agent_outbox_lost_total{sink}",
        "edge-agent outbox --config /etc/edge-agent/agent.yaml stats", "agent/outbox/store.py"),
    "evidence_not_stored": Alarm(
        "Disk full", "evidence: {error}",
        "alarm record `raised` on the station (cleared with `evidence: stored again`); the "
        "verdicts and records go on without their image",
        "edge_agent_evidence_writer_failed_total, edge_agent_evidence_writer_disk_full",
        "edge-agent evidence list --config /etc/edge-agent/agent.yaml",
        "agent/evidence/capture.py"),
    "provider_fallback": Alarm(
        "Provider fallback", "FALLBACK: first-choice provider {provider} is NOT active",
        "log at start (and a refused promote); /healthz `model:<name>: provider ... (fallback)`; "
        "PLC status bit3 (degraded)", "edge_agent_model_info{fallback=\"true\"}",
        "edge-agent bench --model /opt/edge-agent/models/<model>", "agent/inference/providers.py"),
    "drift": Alarm(
        "Drift", "drift: {stat} PSI {psi} >= {threshold}",
        "`drift` record (stats, threshold, model) and audit `drift`",
        "the drift record's stats: psi_brightness, psi_contrast, psi_sharpness, psi_top_score, psi_defect_rate",
        "edge-agent evaluate --model <candidate> --against current --config ... --folder ...",
        "agent/health/drift.py"),
    "model_rolled_back": Alarm(
        "Model rolled back", "model rolled back: {old} -> {new}: guard:{guard}: {reason}",
        "alarm record `raised`; `model` record `rolled_back`; audit `model_switch`",
        "edge_agent_model_rollbacks_total{line,station}",
        "curl -s localhost:9310/status | jq .model_lifecycle", "agent/runtime/model_lifecycle.py"),
    "command_rejected": Alarm(
        "Replayed or forged command", "operator command rejected",
        "log WARNING (first, then one a minute with counts by code); audit `operator_command` "
        "with `code` (replay, unauthenticated, stale, future, client, invalid, malformed)",
        "edge_agent_operator_commands_total{sink,result}",
        "grep operator_command /var/lib/edge-agent/audit.jsonl | tail", "agent/protocols/mqtt/listener.py"),
}


def alarm_text(key: str, **fields: object) -> str:
    """The alarm's exact text with its varying parts filled in."""
    return ALARMS[key].text.format(**fields)
