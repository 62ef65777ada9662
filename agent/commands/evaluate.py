"""Run a candidate model over a folder of images, offline, as a throttled batch job.

    edge-agent evaluate --model models/defect-cnn-v2 --folder /data/heldout
    edge-agent evaluate --model DIR --against current --config line.yaml --station infeed \\
                        --evidence /var/lib/edge-agent/evidence --json report.json

Truth: the subfolder name (`heldout/crack/*.png`) or a JSON sidecar's `truth`; verdicts
recorded at the time: the sidecar (shadow mode's saved disagreements carry them).
`--against current` runs the station's production model too (`--against DIR`: another
model). With `--config` and `--station` each image is judged by the station's rules.
The job runs at the lowest CPU priority (SCHED_IDLE on Linux, and nice +10), one
onnxruntime and one OpenCV thread, and sleeps `--pause-ms` between images, so the
stations keep their cores. Prints a short table;
`--json FILE` writes the whole report (per class figures, confusion matrix, every
disagreeing image). Exit 0, 2 on bad input (a missing folder, a model that cannot load).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from agent.commands import EXIT_CONFIG, load_or_report
from agent.lowprio import lowest_priority

if TYPE_CHECKING:  # imported in main(), once the process runs at its low priority
    from agent.config.models import ModelConfig
    from agent.config.station import DefectRule
    from agent.inference.runner import ModelRunner

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="candidate model folder")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--folder", type=Path,
                     help="images (subfolders named after labels give the truth)")
    src.add_argument("--evidence", type=Path, metavar="DIR",
                     help="the evidence store (state_dir/evidence): its images, with the "
                          "verdicts recorded at the time and the truth in their sidecars "
                          "(--station: only that station's)")
    p.add_argument("--against", default=None,
                   help="'current' (the station's production model; needs --config and "
                        "--station) or another model folder")
    p.add_argument("--config", "-c", default=None, help="the daemon's config file")
    p.add_argument("--station", default=None, help="judge by this station's rules (line/station "
                   "or station)")
    p.add_argument("--json", type=Path, default=None, help="write the full report here")
    p.add_argument("--pause-ms", type=float, default=0.0,
                   help="sleep between images (further throttling; default 0)")
    p.add_argument("--limit", type=int, default=None, help="at most this many images")


def _fail(msg: str) -> int:
    print(f"edge-agent evaluate: {msg}", file=sys.stderr)
    return EXIT_CONFIG


def _station(args: argparse.Namespace) -> tuple[list[DefectRule] | None, ModelRunner | None,
                                                 str | None]:
    """(rules, production runner for --against current, error)."""
    from agent.inference.session import load_model

    if args.config is None:
        if args.against == "current":
            return None, None, "--against current needs --config and --station"
        return None, None, None
    loaded = load_or_report(args.config)
    if loaded is None:
        return None, None, f"{args.config}: invalid config"
    found = [(ln, sn, st) for ln, sn, st in loaded.config.stations()
             if args.station in (sn, f"{ln}/{sn}")]
    if len(found) != 1:
        return None, None, f"{args.config}: station {args.station!r} not found (or on several lines)"
    st = found[0][2]
    ref = None
    if args.against == "current":
        mc = loaded.config.models[st.model]
        ref = load_model(st.model, _one_thread(mc), loaded.base_dir)
    return list(st.rules), ref, None


def _one_thread(mc: ModelConfig) -> ModelConfig:
    return mc.model_copy(update={"intra_op_threads": 1, "inter_op_threads": 1, "warmup_runs": 1})


def main(args: argparse.Namespace) -> int:
    lowest_priority()  # again (also when called as a function), before onnxruntime and
    # OpenCV are imported and start any thread
    import cv2

    from agent.config.models import ModelConfig
    from agent.inference.errors import ModelLoadError
    from agent.inference.session import open_model
    from agent.runtime.evaluation import evaluate, evidence_samples, samples, text_table

    cv2.setNumThreads(1)
    where = args.folder if args.folder is not None else args.evidence
    what = "--folder" if args.folder is not None else "--evidence"
    if not where.is_dir():
        return _fail(f"{what} {where}: not a folder")
    try:
        rules, reference, err = _station(args)
        if err:
            return _fail(err)
        if args.against not in (None, "current"):
            reference = open_model("against", Path(args.against),
                                   ModelConfig(path=str(args.against), warmup_runs=1))
        candidate = open_model("candidate", args.model,
                               ModelConfig(path=str(args.model), warmup_runs=1))
    except ModelLoadError as exc:
        return _fail(str(exc))
    if args.evidence is not None:
        items = evidence_samples(args.evidence, args.station)
    else:
        items = samples(args.folder, set(candidate.manifest.labels) | {"ok"})
    if args.limit is not None:
        items = items[:args.limit]
    if not items:
        return _fail(f"{what} {where}: no images")
    pause = args.pause_ms / 1000.0
    report = evaluate(candidate, reference, where, items, rules,
                      (lambda: time.sleep(pause)) if pause > 0 else (lambda: None))
    for line in text_table(report):
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=1))
        print(f"report: {args.json}")
    return 0
