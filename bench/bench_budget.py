"""Is ``--budget`` kept? Each backend trains on the demo with a budget and far more epochs
than fit in it; what counts is ``manifest.budget.fit_seconds`` (all of ``fit``: data
conversion, planning, training, the last scoring) against the budget.

    kept: fit_seconds <= 1.1 x budget + one optimiser step (the step: training seconds /
          optimiser steps, from the run's own numbers when it reports them)

Usage: .venv/bin/python bench/bench_budget.py [--budget 1m] [--backends mask-rcnn,unet,...|all]
[--val 0.05] (default: one backend per family; ``all``: every installed backend, on its first
task in ``DEFAULT`` or else its first task; each takes a minute or two). ``--val``: the share
held out for scoring after fit: small, since only fit is measured (nnU-Net's mirrored sliding
window alone predicts the demo's default 24 images in minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: backend -> the task it is benchmarked on (one per family; any from `zoo list` works)
DEFAULT = {"mask-rcnn": "instance-seg", "unet": "semantic-seg", "nnunet": "semantic-seg",
           "d2-faster-rcnn": "detect", "yolov8": "detect", "resnet18": "classify", "yolact": "instance-seg"}


def installed_backends() -> dict[str, str]:
    """Every installed backend -> the task it is benchmarked on."""
    from zoo.registry import get_registry

    specs = get_registry().backends
    return {name: DEFAULT.get(name, spec.tasks[0]) for name, spec in sorted(specs.items()) if spec.installed}


def run(backend: str, task: str, budget: str, out: Path, val: float) -> dict:
    done = subprocess.run([sys.executable, "-m", "zoo", "run", "--task", task, "--backend", backend, "--budget", budget,
                           "--epochs", "1000", "--device", "cpu", "--val", str(val), "--out", str(out),
                           "--name", backend], capture_output=True, text=True)
    if done.returncode:
        return {"backend": backend, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    manifest = json.loads((out / backend / "manifest.json").read_text())
    b = manifest["budget"]
    own = manifest.get("framework_metrics") or {}
    steps = own.get("iterations")
    train_s = own.get("train_seconds") or own.get("seconds")
    step = b.get("step_seconds") or (train_s / steps if steps and train_s else None)
    return {"backend": backend, "task": task, "budget": b["seconds"], "fit": b["fit_seconds"],
            "epochs": b.get("epochs"), "inside": b.get("stopped_inside_epoch"), "step": step}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", default="1m")
    ap.add_argument("--backends", default=",".join(DEFAULT))
    ap.add_argument("--val", type=float, default=0.05)
    args = ap.parse_args()
    every = installed_backends()
    tasks = every if args.backends == "all" else {n: every.get(n, DEFAULT.get(n, "?")) for n in args.backends.split(",")}
    print("| backend | task | budget | fit | epochs run | stopped inside an epoch | one step | kept | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, task in tasks.items():
            r = run(name, task, args.budget, Path(tmp), args.val)
            if "error" in r:
                print(f"| {name} | | | | | | | failed: {r['error'][:80]} | {os.getloadavg()[0]:.0f} |", flush=True)
                continue
            step = r["step"] or 0.0
            kept = r["fit"] <= 1.1 * r["budget"] + step
            print(f"| {name} | {r['task']} | {r['budget']:.0f} s | {r['fit']:.1f} s | {r['epochs']} | {r['inside']} | "
                  f"{step:.2f} s | {'yes' if kept else 'NO'} | {os.getloadavg()[0]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
