"""nnU-Net, U-Net (smp), SegResNet and Swin UNETR (MONAI) on the demo's semantic task, under
one short budget: mIoU, mean Dice, mean HD95 and the time each takes.

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_medical.py [--images 60] [--epochs 5] [--out DIR]

One ``zoo compare`` (one split, zoo's shared evaluator, one leaderboard). The budget is the
same number of epochs for every backend, and for nnU-Net as many iterations per epoch as the
others take (training images / batch 8), so every model sees about the same number of
optimiser steps; nnU-Net's fingerprint, planning and preprocessing count in its time. The
script prints the leaderboard rows as a markdown table for bench/README.md.
"""

from __future__ import annotations

import argparse
import csv
import math
import tempfile
from pathlib import Path

BACKENDS = ["nnunet", "unet", "segresnet", "swin-unetr"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from zoo.cli import main as zoo
    from zoo.data.demo import write_demo

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_medical_"))
    data = out / "demo"
    if not data.exists():
        write_demo(data, images=args.images, size=160, seed=0)
    train_images = round(args.images * 0.8)  # zoo's default split: 20% scored
    steps = math.ceil(train_images / 8)
    try:
        zoo(["compare", "--task", "semantic-seg", "--backends", ",".join(BACKENDS), "--data", str(data),
             "--epochs", str(args.epochs), "--imgsz", "160", "--batch", "8", "--device", "cpu",
             "--out", str(out / "runs"), "--set", f"nnunet.iterations_per_epoch={steps}",
             "--set", "nnunet.val_iterations_per_epoch=2"])
    except SystemExit as e:
        if e.code:
            raise
    with open(out / "runs" / "compare" / "semantic-seg" / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    print(f"\n{args.images} demo images (160 px), {args.epochs} epochs, nnU-Net {steps} iterations per epoch\n")
    print("| backend | mIoU | mDice | mHD95 (px) | train | predict ms/img | parameters |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        def num(k, d=3):
            return f"{float(r[k]):.{d}f}" if r.get(k) else "–"
        print(f"| {r['backend']} | {num('mIoU')} | {num('mDice')} | {num('mHD95', 1)} | "
              f"{num('train_s', 0)} s | {num('predict_ms_per_image', 0)} | {int(float(r['parameters'])):,} |"
              if r.get("parameters") else f"| {r['backend']} | failed: {r.get('error')} |")
    print(f"\nrun folders: {out / 'runs'}")


if __name__ == "__main__":
    main()
