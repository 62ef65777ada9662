"""Loading a model beside the running one, for a hot swap: checked, warmed up, low priority.

`load_beside` runs `open_model` (manifest sha256, provider policy, graph and output
checks against the manifest, warm-up) on a thread of its own at a lower CPU priority, so
the stations' threads and the event loop (the stop path) keep their cores; the caller
awaits it without blocking anything. `check_candidate` adds the swap's own rules: the
manifest must pin the sha256, and a candidate may not run on a fallback provider where
the running model does not. Any refusal is a `ModelLoadError` naming the model and why.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path

from agent.config.models import ModelConfig
from agent.inference.errors import ModelLoadError
from agent.inference.runner import ModelRunner
from agent.inference.session import load_model

log = logging.getLogger(__name__)

LOAD_NICE = 10  # added to the loading thread's nice value (Linux: per thread)


def lower_thread_priority(increment: int = LOAD_NICE) -> None:
    """Nice the calling thread only (Linux threads have their own nice value)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
    except (AttributeError, OSError):  # not Linux, or not permitted: load at normal priority
        log.debug("could not lower the priority of the model-loading thread")


def check_candidate(candidate: ModelRunner, running: ModelRunner | None) -> None:
    """The swap's own rules on top of the load's checks; raises ModelLoadError."""
    where = f"model {candidate.name!r}"
    if not candidate.manifest.sha256:
        raise ModelLoadError(f"{where}: model.yaml pins no sha256: a swapped-in model must "
                             f"name the hash of its model.onnx (it is {candidate.info.sha256})")
    if candidate.fallback and running is not None and not running.fallback:
        raise ModelLoadError(
            f"{where}: would run on {candidate.info.provider}, not on its first-choice "
            f"provider, while the running model {running.name!r} runs on "
            f"{running.info.provider}: not swapped in (provider policy)")


def _load(name: str, cfg: ModelConfig, base_dir: Path) -> ModelRunner:
    lower_thread_priority()
    return load_model(name, cfg, base_dir)


async def load_beside(name: str, cfg: ModelConfig, base_dir: Path,
                      running: ModelRunner | None) -> ModelRunner:
    """Load, check and warm up `name` on a thread of its own; the loop never waits on it."""
    result: asyncio.Future[ModelRunner] = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()

    def work() -> None:
        runner: ModelRunner | None = None
        error: BaseException | None = None
        try:
            runner = _load(name, cfg, base_dir)
            check_candidate(runner, running)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            runner, error = None, exc
        try:
            loop.call_soon_threadsafe(_settle, result, runner, error)
        except RuntimeError:  # the loop closed meanwhile (the daemon stopped): dropped
            log.debug("model %s loaded after the daemon stopped; dropped", name)

    threading.Thread(target=work, name=f"load-model-{name}", daemon=True).start()
    return await result


def _settle(fut: asyncio.Future[ModelRunner], value: ModelRunner | None,
            exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc if isinstance(exc, ModelLoadError) else ModelLoadError(
            f"model load failed: {type(exc).__name__}: {exc}"))
    else:
        assert value is not None
        fut.set_result(value)

