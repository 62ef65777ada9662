"""OpenVINO execution provider (device_type CPU) vs the default CPU provider (issue 20).

Two models: the bundled defect-cnn (0.3 ms) and a YOLO-sized network (640x640, ~4 GMAC,
bench/make_heavy_model.py --yolo). Each variant runs in its own process, loaded by the
project's loader (agent.inference.session.load_model, so the daemon's session options):

- default: the project venv's onnxruntime, CPUExecutionProvider, `intra_op_threads` 1
  (the config default) and 0 (onnxruntime's default: every core);
- OpenVINO: .venv-openvino (onnxruntime-openvino; scripts/setup_openvino.sh makes it),
  OpenVINOExecutionProvider with device_type CPU, `num_of_threads` 1 and OpenVINO's
  default.

Variants run interleaved, `--rounds` times; per variant: median session.run ms (p50 of
each round, median over rounds), p99, and process CPU ms per run. The ratio default /
OpenVINO is printed last per model (> 1: OpenVINO is faster).

    .venv/bin/python bench/bench_openvino.py [--runs 300] [--rounds 3] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SIDE = REPO / ".venv-openvino" / "bin" / "python"

CHILD = r'''
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from agent.config.models import ModelConfig
from agent.inference.session import load_model
model, provider, threads, runs = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
if provider == "openvino":
    opts = {"device_type": "CPU"}
    if threads:
        opts["num_of_threads"] = threads
    cfg = ModelConfig(path=model, require_first=True, providers=[
        {"name": "OpenVINOExecutionProvider", "options": opts}])
else:
    cfg = ModelConfig(path=model, intra_op_threads=threads)
r = load_model("m", cfg, Path(model).parent)
x = r.pre.blank()
for _ in range(max(5, runs // 20)):
    r.session.run(None, {r.input_name: x})
ms = []
c0 = time.process_time()
for _ in range(runs):
    t = time.perf_counter()
    r.session.run(None, {r.input_name: x})
    ms.append((time.perf_counter() - t) * 1000)
cpu = (time.process_time() - c0) / runs * 1000
ms.sort()
print(json.dumps({"provider": r.info.provider, "p50": ms[len(ms) // 2],
                  "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))], "cpu": cpu}))
'''

VARIANTS = [  # (label, python, provider, threads)
    ("CPU EP, 1 thread (default)", sys.executable, "cpu", 1),
    ("OpenVINO CPU, 1 thread", str(SIDE), "openvino", 1),
    ("CPU EP, all cores", sys.executable, "cpu", 0),
    ("OpenVINO CPU, its default threads", str(SIDE), "openvino", 0),
]


def run(python: str, model: Path, provider: str, threads: int, runs: int) -> dict[str, float]:
    out = subprocess.run([python, "-c", CHILD, str(REPO), str(model), provider, str(threads),
                          str(runs)], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{provider} on {model}: {out.stderr[-2000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    expected = "OpenVINOExecutionProvider" if provider == "openvino" else "CPUExecutionProvider"
    assert r["provider"] == expected, r
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="CI: 20 runs, 1 round")
    args = ap.parse_args()
    if args.smoke:
        args.runs, args.rounds = 20, 1
    if not SIDE.exists():
        subprocess.run(["bash", str(REPO / "scripts" / "setup_openvino.sh")], check=True)
    sys.path.insert(0, str(REPO / "bench"))
    from make_heavy_model import write

    with tempfile.TemporaryDirectory() as d:
        models = {"bundled defect-cnn (128x96)": REPO / "models" / "defect-cnn",
                  "YOLO-sized (640x640, 3.9 GMAC)": write(Path(d) / "yolo", yolo=True)}
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {args.runs} runs "
              f"x {args.rounds} interleaved rounds per variant")
        for name, model in models.items():
            res: dict[str, list[dict[str, float]]] = {v[0]: [] for v in VARIANTS}
            runs = args.runs if "bundled" in name else max(10, args.runs // 10)
            for _ in range(args.rounds):
                for label, python, provider, threads in VARIANTS:
                    res[label].append(run(python, model, provider, threads, runs))
            print(f"{name}:")
            med = {}
            for label, rs in res.items():
                med[label] = statistics.median(r["p50"] for r in rs)
                print(f"  {label:<34} p50 {med[label]:8.3f} ms  p99 "
                      f"{statistics.median(r['p99'] for r in rs):8.3f} ms  CPU "
                      f"{statistics.median(r['cpu'] for r in rs):8.3f} ms per run")
            one = med[VARIANTS[0][0]] / med[VARIANTS[1][0]]
            many = med[VARIANTS[2][0]] / med[VARIANTS[3][0]]
            print(f"  ratio default / OpenVINO (p50; > 1: OpenVINO faster): 1 thread {one:.2f}, "
                  f"all cores {many:.2f}")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
