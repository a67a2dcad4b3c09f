"""``zoo compare --folds 3`` on the demo: ``--jobs 2`` against one run after another (wall ratio),
and optionally ``--executor ray`` against local (overhead per run).

    python bench/bench_compare_jobs.py [--task classify] [--backends a,b,c] [--epochs 1] [--imgsz 64]
    python bench/bench_compare_jobs.py --ray ADDRESS   # also on an existing Ray cluster

Each variant trains into its own fresh folder (nothing reused), on the CPU.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_compare(out: Path, args, *extra: str) -> float:
    cmd = [sys.executable, "-m", "zoo", "compare", "--task", args.task, "--backends", args.backends,
           "--folds", str(args.folds), "--epochs", str(args.epochs), "--imgsz", str(args.imgsz), "--device", "cpu",
           "--samples", "0", "--out", str(out), *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="classify")
    ap.add_argument("--backends", default="mobilenet_v3_small,resnet18,alexnet")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--imgsz", type=int, default=64)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--ray", default=None, help="address of an existing Ray cluster")
    args = ap.parse_args()
    runs = len(args.backends.split(",")) * args.folds
    with tempfile.TemporaryDirectory() as tmp:
        seq = timed_compare(Path(tmp) / "seq", args)
        par = timed_compare(Path(tmp) / "par", args, "--jobs", str(args.jobs))
        print(f"{runs} runs: sequential {seq:.1f} s, --jobs {args.jobs} {par:.1f} s, ratio {par / seq:.2f}")
        if args.ray:
            ray = timed_compare(Path(tmp) / "ray", args, "--executor", "ray", "--address", args.ray)
            print(f"ray {ray:.1f} s: overhead per run vs sequential local {(ray - seq) / runs:+.2f} s")


if __name__ == "__main__":
    main()
