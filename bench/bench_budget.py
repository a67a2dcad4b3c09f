"""Is ``--budget`` kept? Each backend trains on the demo with a budget and far more epochs
than fit in it; what counts is ``manifest.budget.fit_seconds`` (all of ``fit``: data
conversion, planning, training, the last scoring) against the budget.

    kept: fit_seconds <= 1.1 x budget + one optimiser step (the step: training seconds /
          optimiser steps, from the run's own numbers when it reports them)

Usage: .venv/bin/python bench/bench_budget.py [--budget 1m] [--backends mask-rcnn,unet,...]
(default: one backend per family; every backend takes several minutes each on a laptop).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

#: backend -> the task it is benchmarked on (one per family; any from `zoo list` works)
DEFAULT = {"mask-rcnn": "instance-seg", "unet": "semantic-seg", "nnunet": "semantic-seg",
           "d2-faster-rcnn": "detect", "yolov8": "detect", "resnet18": "classify", "yolact": "instance-seg"}


def run(backend: str, task: str, budget: str, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "zoo", "run", "--task", task, "--backend", backend, "--budget", budget,
                           "--epochs", "1000", "--device", "cpu", "--out", str(out), "--name", backend],
                          capture_output=True, text=True)
    if done.returncode:
        return {"backend": backend, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    manifest = json.loads((out / backend / "manifest.json").read_text())
    b = manifest["budget"]
    own = manifest.get("framework_metrics") or {}
    steps = own.get("iterations")
    train_s = own.get("train_seconds") or own.get("seconds")
    step = train_s / steps if steps and train_s else None
    return {"backend": backend, "task": task, "budget": b["seconds"], "fit": b["fit_seconds"],
            "epochs": b.get("epochs"), "inside": b.get("stopped_inside_epoch"), "step": step}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", default="1m")
    ap.add_argument("--backends", default=",".join(DEFAULT))
    args = ap.parse_args()
    print("| backend | task | budget | fit | epochs run | stopped inside an epoch | one step | kept |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backends.split(","):
            r = run(name, DEFAULT.get(name, "semantic-seg"), args.budget, Path(tmp))
            if "error" in r:
                print(f"| {name} | | | | | | | failed: {r['error'][:80]} |", flush=True)
                continue
            step = r["step"] or 0.0
            kept = r["fit"] <= 1.1 * r["budget"] + step
            print(f"| {name} | {r['task']} | {r['budget']:.0f} s | {r['fit']:.1f} s | {r['epochs']} | {r['inside']} | "
                  f"{step:.2f} s | {'yes' if kept else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
