"""How each component's `stats()` becomes metrics: one entry per registered name.

`StatsRegistry.register(name, ...)` takes its defaults from here, so a build site is
one line. `stats` names the dataclass (module:Class) the source returns; the metrics
reference (docs/metrics.md, `edge-agent metrics-doc`) is generated from it, and a
test checks that a running daemon exports nothing that is not listed there.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Spec:
    stats: str  # "module:Class" of what the source returns (a mapping: "" and `fields`)
    help: str
    labels: tuple[str, ...]
    gauges: tuple[str, ...] = ()  # int fields that are levels, not counters
    skip: tuple[str, ...] = ()  # numeric fields that are not metrics (monotonic stamps)
    keys: dict[str, str] = field(default_factory=dict)  # dict field -> label of its keys
    rename: dict[str, str] = field(default_factory=dict)  # field -> metric stem
    fields: dict[str, str] = field(default_factory=dict)  # mapping sources: field -> type
    each: bool = False  # the source returns {value of its one label: stats}


SPECS: dict[str, Spec] = {
    "camera": Spec("agent.capture.events:CameraStats", "Camera capture", ("camera",)),
    "camera_stream": Spec("", "GenICam stream statistics (Aravis), summed over reconnects",
                          ("camera",), fields={name: "int" for name in (
                              "completed_buffers", "failed_buffers", "underrun_buffers",
                              "timeout_buffers", "missing_packets", "resent_packets")}),
    "worker": Spec("agent.inference.stats:WorkerStats", "Station inference worker",
                   ("line", "station"), skip=("last_progress", "last_loop")),
    "slot": Spec("", "Newest-frame slot of a station", ("line", "station"),
                 fields={"dropped": "int"}),
    "model": Spec("agent.inference.stats:RunnerStats", "Model session (latency over the "
                  "last 1024 frames)", ("model",)),
    "engine": Spec("agent.decision.views:EngineStats", "Decision engine", (),
                   keys={"verdicts": "result", "commands": "kind", "rejected": "reason"}),
    "router": Spec("", "Record router (records refused by the outbox, records with no sink)",
                   (), fields={"refused": "int", "unrouted": "int"}),
    "outbox": Spec("agent.outbox.stats:SinkOutboxStats", "Outbox per sink (also sinks no "
                   "longer configured that still hold records)", ("sink",),
                   gauges=("depth", "bytes", "dead"), each=True),
    "outbox_store": Spec("agent.outbox.stats:StoreStats", "Outbox store", (),
                         skip=("disk_full", "opened", "lost_at_start")),
    "forwarder": Spec("agent.outbox.forwarder:ForwarderStats", "Outbox forwarder per sink",
                      ("sink",)),
    "mqtt_sink": Spec("agent.protocols.mqtt.sink:MqttSinkStats", "MQTT sink", ("sink",)),
    "http_sink": Spec("agent.protocols.http.sink:HttpSinkStats", "HTTP sink", ("sink",),
                      skip=("last_status",)),
    "file_sink": Spec("agent.protocols.file.sink:FileSinkStats", "File sink", ("sink",),
                      rename={"bytes_written": "written_bytes"}),
    "plc": Spec("agent.protocols.link:PlcStats", "PLC link", ("plc",)),
    "dispatcher": Spec("agent.control.dispatcher:DispatcherStats", "PLC command dispatcher",
                       ("plc",), gauges=("pending",)),
    "heartbeat": Spec("agent.control.heartbeat:HeartbeatStats", "PLC heartbeat", ("plc",),
                      gauges=("counter",)),
    "trigger": Spec("agent.control.trigger:TriggerStats", "PLC trigger handshake",
                    ("line", "station", "plc")),
    "reset_watch": Spec("agent.control.reset_watch:ResetWatchStats", "PLC reset input",
                        ("plc",)),
    "audit": Spec("agent.audit:AuditStats", "Audit log", (), gauges=("bytes",)),
    "evidence_writer": Spec("agent.evidence.writer:WriterStats", "Evidence writer thread", (),
                            gauges=("queue_depth",), rename={"bytes_written": "written_bytes"}),
    "evidence_store": Spec("agent.evidence.retention:RetentionStats", "Evidence store and "
                           "retention", (), gauges=("items", "bytes", "free_bytes")),
    "sd_notify": Spec("agent.health.sdnotify:SdNotifyStats", "sd_notify messages", ()),
    "watchdog": Spec("agent.health.watchdog:WatchdogStats", "systemd watchdog", ()),
    "health": Spec("agent.health.server:ServerStats", "Health HTTP server", (),
                   gauges=("active", "pending"), keys={"responses": "code"}),
    "console": Spec("agent.web.live:ConsoleStats", "Web console live view (frames drawn and "
                    "encoded only while a viewer watches)", (), gauges=("viewers",)),
}

# Gauges and counters not read from a stats() dataclass (health wiring, outbox alarms,
# PLC refusals, operator commands): name, type, labels, help.
OTHER_METRICS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("edge_agent_camera_streaming", "gauge", ("camera",), "1 while the camera streams"),
    ("edge_agent_model_info", "gauge", ("model", "version", "provider", "fallback"),
     "Always 1: the model version and the execution provider that runs it"),
    ("edge_agent_sink_connected", "gauge", ("sink",), "1 while the sink is connected"),
    ("edge_agent_plc_connected", "gauge", ("plc",), "1 while the PLC link is connected"),
    ("edge_agent_plc_refusing_writes", "gauge", ("plc",), "1 while the PLC refuses the heartbeat's writes"),
    ("edge_agent_operator_commands_total", "counter", ("sink", "result"), "Operator commands by result "
     "(accepted, or why rejected)"),
    ("edge_agent_loop_lag_seconds", "gauge", (), "How late the event loop woke up last"),
    ("edge_agent_loop_lag_max_seconds", "gauge", (), "Largest event-loop lag since start"),
    ("edge_agent_healthy", "gauge", (), "1 while every camera and station inspects (none paused)"),
    ("edge_agent_outbox_disk_full", "gauge", (), "1 while the outbox cannot write (full disk)"),
    ("edge_agent_outbox_open", "gauge", (), "0 while the outbox file could not be opened"),
    ("edge_agent_outbox_lost_at_start", "gauge", (), "Committed records found missing or "
     "quarantined at this start"),
    ("edge_agent_outbox_quarantined", "gauge", (), "1 when the outbox file was corrupt and moved "
     "aside at this start"),
    ("edge_agent_outbox_loss_alarms_total", "counter", (), "Outbox-loss alarm records raised"),
    ("edge_agent_metrics_source_errors_total", "counter", (), "Stats sources or samples that "
     "failed at scrape time (see the log)"),
    # the model lifecycle (agent.runtime.model_lifecycle): switches, rollbacks, shadow
    ("edge_agent_model_switches_total", "counter", ("line", "station"), "Production model "
     "switches (promote, reload, rollback)"),
    ("edge_agent_model_rollbacks_total", "counter", ("line", "station"), "Rollbacks to the "
     "previous model (a guard or an operator)"),
    ("edge_agent_model_switch_refused_total", "counter", ("line", "station"), "Promotes, "
     "reload swaps and rollbacks refused"),
    ("edge_agent_shadow_frames_total", "counter", ("line", "station", "result"), "Frames the "
     "shadow model ran on: compared, agree, error"),
    ("edge_agent_shadow_skipped_total", "counter", ("line", "station", "why"), "Frames the "
     "shadow model did not run on: production_busy, shadow_busy"),
    ("edge_agent_shadow_flips_total", "counter", ("line", "station", "direction", "class"),
     "Frames whose verdict the shadow model flips (ok_to_ng, ng_to_ok), per class"),
    ("edge_agent_shadow_agreement_ratio", "gauge", ("line", "station"), "Share of compared "
     "frames where the shadow and production verdicts agree"),
    ("edge_agent_shadow_p99_seconds", "gauge", ("line", "station"), "Shadow model pre + run + "
     "post, p99 of the last 1024 frames"),
    ("edge_agent_shadow_cpu_seconds_per_frame", "gauge", ("line", "station"), "CPU time of the "
     "shadow thread per frame compared"),
)
