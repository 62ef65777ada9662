"""Prometheus metrics on a private registry, rendered as the text exposition format.

Event metrics (stage latencies, verdicts, defects, command outcomes) are observed as
they happen. Everything that is state is collected at scrape time: the `stats()` of
every component registered in `self.stats` (agent.health.registry: one collector
turns their fields into metrics) and gauge sources, callables returning
`GaugeSample`s (camera streaming, sink/PLC connected, loop lag...), so those modules
never import prometheus_client. Process, platform and build-info metrics come with it.

Durations are exported in seconds (Prometheus convention); bucket bounds span
0.1 ms .. 1 s (the range of frame age, pre/post-processing and inference times).
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from agent import __version__
from agent.health.registry import PREFIX, GaugeSample, GaugeSource, StatsRegistry
from agent.logutil import RepeatLimiter
from agent.types import CommandOutcome, Inspection, Verdict

log = logging.getLogger(__name__)

STAGE_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)
COMMAND_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def samples_from_stats(
    prefix: str, labels: Mapping[str, str], stats: Mapping[str, float], help: str,
    counters: Iterable[str] = (),
) -> list[GaugeSample]:
    """`{prefix}_{key}` samples from a flat stats mapping; keys in `counters` are counters."""
    counter_keys = set(counters)
    return [
        GaugeSample(f"{prefix}_{key}", dict(labels), float(value), f"{help}: {key}",
                    "counter" if key in counter_keys else "gauge")
        for key, value in stats.items()
    ]


@dataclass
class _Family:
    metric: Metric
    kind: str
    samples: list[GaugeSample] = field(default_factory=list)


def build_info() -> dict[str, str]:
    """Versions for `edge_agent_build_info` (from package metadata: onnxruntime is not
    imported for it)."""
    ort = "none"
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            ort = importlib.metadata.version(dist)
            break
        except importlib.metadata.PackageNotFoundError:
            continue
    return {"version": __version__, "python": platform.python_version(), "onnxruntime": ort}


class _SourceCollector(Collector):
    """Calls every gauge source at scrape time; a failing source costs its samples only."""

    def __init__(self, stats: StatsRegistry) -> None:
        self.sources: list[GaugeSource] = []
        self.stats = stats
        self.errors = 0
        self._limiter = RepeatLimiter(log, "metrics gauge source")

    def collect(self) -> Iterator[Metric]:
        families: dict[str, _Family] = {}
        for source in list(self.sources) + self.stats.readers():
            for sample in self._samples(source):
                self._add(families, sample)
        for fam in families.values():
            yield fam.metric
        yield from self._error_metric()

    def _samples(self, source: GaugeSource) -> list[GaugeSample]:
        try:
            samples = list(source())
        except Exception as exc:
            self.errors += 1
            self._limiter.failure("%r raised %s: %s", source, type(exc).__name__, exc)
            return []
        self._limiter.recovered()
        return samples

    def _add(self, families: dict[str, _Family], s: GaugeSample) -> None:
        base = s.name[:-6] if s.kind == "counter" and s.name.endswith("_total") else s.name
        if not _NAME.match(s.name) or not all(_LABEL.match(k) for k in s.labels):
            self._reject(s, "invalid metric or label name")
            return
        fam = families.get(base)
        if fam is None:
            fam = families[base] = _Family(Metric(base, s.help, s.kind), s.kind)
        if fam.kind != s.kind:
            self._reject(s, f"kind {s.kind} conflicts with {fam.kind}")
            return
        sample_name = base + "_total" if s.kind == "counter" else base
        fam.metric.add_sample(sample_name, {k: str(v) for k, v in s.labels.items()}, s.value)

    def _reject(self, s: GaugeSample, why: str) -> None:
        self.errors += 1
        self._limiter.failure("dropped sample %s%s: %s", s.name, s.labels, why)

    def _error_metric(self) -> Iterator[Metric]:
        m = Metric(f"{PREFIX}_metrics_source_errors", "Gauge sources or samples that failed "
                   "at scrape time (see the log)", "counter")
        m.add_sample(f"{PREFIX}_metrics_source_errors_total", {}, float(self.errors))
        yield m


class Metrics:
    """The agent's metrics. Thread-safe: observe_* may be called from worker threads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self._stage = Histogram(
            f"{PREFIX}_stage_seconds", "Per-frame stage duration (frame_age, pre, infer, post)",
            ["line", "station", "stage"], buckets=STAGE_BUCKETS_S, registry=reg)
        self._inspections = Counter(
            f"{PREFIX}_inspections", "Frames inspected, by the provider that ran",
            ["line", "station", "provider"], registry=reg)
        self._inference_errors = Counter(
            f"{PREFIX}_inference_errors", "Frames whose inference failed",
            ["line", "station"], registry=reg)
        self._verdicts = Counter(
            f"{PREFIX}_verdicts", "Verdicts by result", ["line", "station", "result"], registry=reg)
        self._defects = Counter(
            f"{PREFIX}_defects", "NG verdicts by defect class",
            ["line", "station", "defect_class"], registry=reg)
        self._budget = Counter(
            f"{PREFIX}_budget_exceeded", "Verdicts that missed the station's latency budget",
            ["line", "station"], registry=reg)
        self._verdict_latency = Histogram(
            f"{PREFIX}_verdict_latency_seconds", "Capture -> verdict latency",
            ["line", "station"], buckets=STAGE_BUCKETS_S, registry=reg)
        self._commands = Counter(
            f"{PREFIX}_commands", "PLC command outcomes",
            ["line", "station", "plc", "kind", "status"], registry=reg)
        self._command_latency = Histogram(
            f"{PREFIX}_command_latency_seconds", "Decision -> PLC acknowledgement",
            ["plc", "kind"], buckets=COMMAND_BUCKETS_S, registry=reg)
        self.stats = StatsRegistry()  # components register their stats() when built
        self._sources = _SourceCollector(self.stats)
        reg.register(self._sources)
        ProcessCollector(registry=reg)  # process_cpu_seconds_total, _resident_memory_bytes..
        PlatformCollector(registry=reg)  # python_info
        Gauge(f"{PREFIX}_build_info", "The running edge-agent, its Python and onnxruntime",
              ["version", "python", "onnxruntime"], registry=reg).labels(**build_info()).set(1)
        # labelled children per (line, station, provider): `labels()` per frame cost more
        # than the observations (a lock, a key built and looked up, per metric)
        self._per_frame: dict[tuple[str, str, str], tuple[Counter, tuple[Histogram, ...]]] = {}
        self._per_verdict: dict[tuple[str, str, str], Counter] = {}
        self._per_station: dict[tuple[str, str], Histogram] = {}

    def observe_inspection(self, line: str, station: str, insp: Inspection) -> None:
        if insp.error is not None:
            self._inference_errors.labels(line, station).inc()
        key = (line, station, insp.model.provider)
        children = self._per_frame.get(key)
        if children is None:
            children = self._per_frame[key] = (
                self._inspections.labels(*key),
                tuple(self._stage.labels(line, station, stage)
                      for stage in ("frame_age", "pre", "infer", "post")))
        count, (age, pre, infer, post) = children
        count.inc()
        t = insp.timings
        age.observe(t.frame_age_ms / 1000.0)
        pre.observe(t.pre_ms / 1000.0)
        infer.observe(t.infer_ms / 1000.0)
        post.observe(t.post_ms / 1000.0)

    def observe_verdict(self, v: Verdict) -> None:
        key = (v.line, v.station, v.result.value)
        count = self._per_verdict.get(key)
        if count is None:
            count = self._per_verdict[key] = self._verdicts.labels(*key)
        count.inc()
        if v.result.value == "NG":
            self._defects.labels(v.line, v.station, v.defect_class or "unknown").inc()
        if v.budget_exceeded:
            self._budget.labels(v.line, v.station).inc()
        total_ms = v.latency_ms.get("total_ms", sum(v.latency_ms.values()))
        if v.latency_ms:
            latency = self._per_station.get((v.line, v.station))
            if latency is None:
                latency = self._per_station[(v.line, v.station)] = \
                    self._verdict_latency.labels(v.line, v.station)
            latency.observe(total_ms / 1000.0)

    def observe_outcome(self, o: CommandOutcome) -> None:
        c = o.command
        self._commands.labels(c.line, c.station, c.plc, c.kind.value, o.status.value).inc()
        if o.latency_ms is not None:
            self._command_latency.labels(c.plc, c.kind.value).observe(o.latency_ms / 1000.0)

    def add_gauge_source(self, fn: GaugeSource) -> None:
        self._sources.sources.append(fn)

    def render(self) -> bytes:
        return generate_latest(self.registry)
