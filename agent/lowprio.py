"""The lowest CPU priority for batch jobs that share the box with the stations.

SCHED_IDLE where Linux offers it (the job gets a core only when nothing else wants it)
and nice +10 elsewhere. For a separate process only: a thread of the daemon at SCHED_IDLE
could be descheduled while holding the GIL and stall the stations' threads behind it.
Applied by the command line before the job's heavy imports.
"""

from __future__ import annotations

import os

NICE = 10


def lowest_priority() -> None:
    """Idempotent: a second call changes nothing."""
    try:
        os.nice(max(0, NICE - os.nice(0)))
    except OSError:
        pass
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass
