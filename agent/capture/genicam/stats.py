"""Aravis stream statistics, summed over every stream the source opened."""

from __future__ import annotations

from typing import Any

# Aravis stream info name -> metric name (edge_agent_camera_stream_<name>_total)
STREAM_COUNTERS = {
    "n_completed_buffers": "completed_buffers",
    "n_failures": "failed_buffers",
    "n_underruns": "underrun_buffers",
    "n_timeouts": "timeout_buffers",
    "n_missing_packets": "missing_packets",
    "n_resent_packets": "resent_packets",
}


def read_stream(stream: Any) -> dict[str, int]:
    """The counters of one open Aravis stream (absent ones as 0)."""
    out = dict.fromkeys(STREAM_COUNTERS.values(), 0)
    try:
        names = {stream.get_info_name(i): i for i in range(stream.get_n_infos())}
    except AttributeError:  # Aravis < 0.8.11: only the two GigE counters
        resent, missing = stream.get_statistics()[:2] if hasattr(stream, "get_statistics") else (0, 0)
        out.update(resent_packets=int(resent), missing_packets=int(missing))
        return out
    for name, metric in STREAM_COUNTERS.items():
        if name in names:
            out[metric] = int(stream.get_info_uint64(names[name]))
    return out


class StreamTotals:
    """Counters of the closed streams plus the open one."""

    def __init__(self) -> None:
        self._closed = dict.fromkeys(STREAM_COUNTERS.values(), 0)

    def close(self, stream: Any) -> None:
        for k, v in read_stream(stream).items():
            self._closed[k] += v

    def total(self, stream: Any | None) -> dict[str, int]:
        live = read_stream(stream) if stream is not None else {}
        return {k: v + live.get(k, 0) for k, v in self._closed.items()}
