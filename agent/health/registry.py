"""One stats registry: every component registers its `stats()` when it is built.

A source is a name (the metric stem, e.g. `dispatcher`), constant labels (e.g.
`{"plc": "press1"}`) and a callable returning the component's plain stats (a
dataclass or a mapping; None while there is nothing to report). At scrape time one
collector turns every numeric field into a metric, following Prometheus conventions:

- `int` fields are counters, exported as `edge_agent_<name>_<field>_total`, except the
  ones the source names in `gauges` (levels such as a queue depth);
- `float` and `bool` fields are gauges (a bool as 0/1);
- the unit is in the name: a field ending in `_ms` is exported in seconds with the
  suffix `_seconds`, `_s` becomes `_seconds`, `bytes` stays `bytes`, a `fraction` is
  a `ratio`;
- a `dict[str, number]` field named in `keys` gives one sample per key, with the key
  as the label `keys[field]` (e.g. verdicts by `result`); other dicts, strings,
  enums and None are not numbers and are left out, as are the fields in `skip`.

The modules keep returning plain dataclasses and never import prometheus_client.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.health.stats_specs import SPECS

PREFIX = "edge_agent"
StatsReader = Callable[[], Any]

# field suffix -> (metric suffix, factor to the base unit)
_UNITS = (("_ms", "_seconds", 0.001), ("_s", "_seconds", 1.0), ("_fraction", "_ratio", 1.0))
_WHOLE = {"fraction": ("ratio", 1.0)}


@dataclass(frozen=True, slots=True)
class GaugeSample:
    """One value collected at scrape time. Samples sharing a name form one metric family
    (the first sample's help and kind win). A counter's name may end in `_total`."""

    name: str
    labels: dict[str, str]
    value: float
    help: str
    kind: Literal["gauge", "counter"] = "gauge"


GaugeSource = Callable[[], Iterable[GaugeSample]]


@dataclass(frozen=True)
class StatsSource:
    """One registered component: how its stats become metrics."""

    name: str
    read: StatsReader
    labels: Mapping[str, str]
    help: str
    gauges: frozenset[str] = frozenset()
    skip: frozenset[str] = frozenset()
    keys: Mapping[str, str] = field(default_factory=dict)
    rename: Mapping[str, str] = field(default_factory=dict)
    each: str | None = None  # read() gives {value of this label: stats}


def metric_field(name: str) -> tuple[str, float]:
    """A stats field's metric suffix and the factor to its base unit."""
    if name in _WHOLE:
        return _WHOLE[name]
    for suffix, unit, factor in _UNITS:
        if name.endswith(suffix):
            return name[: -len(suffix)] + unit, factor
    return name, 1.0


class StatsRegistry:
    """Named stats sources; `samples()` is the metrics collector's gauge source."""

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self._sources: dict[tuple[str, tuple[tuple[str, str], ...]], StatsSource] = {}

    def register(self, name: str, read: StatsReader, **labels: str) -> None:
        """Add a component; how its fields become metrics is `stats_specs.SPECS[name]`.
        The same name with the same labels twice is a wiring bug, as are labels other
        than the spec's."""
        spec = SPECS[name]
        if tuple(labels) != (spec.labels[1:] if spec.each else spec.labels):
            raise ValueError(f"stats source {name}: labels {tuple(labels)}, "
                             f"expected {spec.labels}")
        ident = (name, tuple(labels.items()))
        if ident in self._sources:
            raise ValueError(f"stats source {name} {labels} is already registered")
        self._sources[ident] = StatsSource(
            name, read, labels, spec.help, frozenset(spec.gauges), frozenset(spec.skip),
            spec.keys, spec.rename, spec.labels[0] if spec.each else None)

    @staticmethod
    def known(name: str) -> bool:
        """Whether `name` has a spec (a sink type whose stats are exported)."""
        return name in SPECS

    def sources(self) -> list[StatsSource]:
        return list(self._sources.values())

    def readers(self) -> list[GaugeSource]:
        """One gauge source per component: one that raises costs the scrape its own
        samples only (the collector counts and logs the error)."""
        return [functools.partial(source_samples, self.prefix, src)
                for src in list(self._sources.values())]

    def samples(self) -> list[GaugeSample]:
        """Every numeric field of every source, as read now."""
        return [s for read in self.readers() for s in read()]


def source_samples(prefix: str, src: StatsSource) -> list[GaugeSample]:
    stats = src.read()
    if stats is None:
        return []
    if src.each is not None:
        return [s for value, one in stats.items()
                for s in _samples(prefix, src, one, {src.each: str(value)})]
    return _samples(prefix, src, stats, {})


def _samples(prefix: str, src: StatsSource, stats: Any, labels: dict[str, str],
             ) -> list[GaugeSample]:
    out: list[GaugeSample] = []
    for key, value in _fields(stats).items():
        if key in src.skip:
            continue
        name = src.rename.get(key, key)
        if isinstance(value, Mapping):
            label = src.keys.get(key)
            if label is not None:
                out += [_sample(prefix, src, name, v, {**labels, label: str(k)}, key)
                        for k, v in value.items() if _number(v)]
            continue
        if _number(value):
            out.append(_sample(prefix, src, name, value, labels, key))
    return out


def _fields(stats: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        return {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
    return dict(stats)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, enum.Enum)


def _sample(prefix: str, src: StatsSource, name: str, value: float, extra: dict[str, str],
            key: str) -> GaugeSample:
    labels = {**src.labels, **extra}
    counter = isinstance(value, int) and not isinstance(value, bool) and key not in src.gauges
    suffix, factor = metric_field(name)
    metric = f"{prefix}_{src.name}_{suffix}" + ("_total" if counter else "")
    return GaugeSample(metric, labels, float(value) * factor, f"{src.help}: {key}",
                       "counter" if counter else "gauge")
