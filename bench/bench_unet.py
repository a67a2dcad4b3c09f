"""U-Net on the demo data: what `zoo run --task semantic-seg --backend unet` reaches with the
shipped defaults, how long it takes, and zoo's per-iteration overhead against a plain loop.

    .venv/bin/python bench/bench_unet.py [--epochs N] [--out DIR]

The run is the real pipeline (read, split, fit through zoo.training, predict, the shared
semantic evaluator). The anchor, measured in the same process before and after it, is the
loop a user would write by hand: the same smp.Unet, optimiser and Dice + cross-entropy on
tensors already in memory. ratio = zoo seconds per training iteration (epochs after the
first, which also decodes and rasterises the images) / the anchor's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from zoo.pipeline.options import Output, Training


def anchor_seconds_per_iter(train, meta, config, device: str, iters: int = 12) -> float:
    """A hand-written training loop over the same model and recipe."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from zoo.training.dense.samples import letterboxed_pair, to_tensor
    from zoo.plugins.smp.models import build_model

    side = config.imgsz  # the demo images are square and 160 = 5 * 32: no padding needed
    pairs = [letterboxed_pair(r, meta, config.imgsz, side, True) for r in train.images[: config.batch]]
    x = torch.stack([to_tensor(p[0]) for p in pairs])
    y = torch.stack([torch.from_numpy(p[1].astype(np.int64)) for p in pairs])
    model = build_model("Unet", encoder=config.encoder, classes=len(meta.categories) + 1).to(device)
    x, y = x.to(device), y.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    import segmentation_models_pytorch as smp

    dice = smp.losses.DiceLoss("multiclass", from_logits=True, ignore_index=255)
    model.train()

    def step():
        out = model(x)
        loss = F.cross_entropy(out, y, ignore_index=255) + dice(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=None, help="override the shipped default (20)")
    ap.add_argument("--device", default="cpu", help="cpu (default: the figure users without a GPU get), cuda, auto")
    ap.add_argument("--out", type=Path, default=None, help="where the run folder goes (default: a temp dir)")
    args = ap.parse_args()

    import torch

    from zoo.config import resolve_config
    from zoo.training.devices import resolve_device
    from zoo.data.demo import ensure_demo
    from zoo.registry import get_registry
    from zoo.data.reading import read_dataset
    from zoo.pipeline.run import RunOptions, execute

    Unet = get_registry().backend("unet").load()
    data = read_dataset(ensure_demo())
    config = resolve_config(Unet.Config, backend="unet", task="semantic-seg",
                            flags={"epochs": args.epochs, "device": args.device})
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_unet_"))

    device = resolve_device(args.device)
    before = anchor_seconds_per_iter(data, data.meta(), config, device)
    t0 = time.perf_counter()
    result = execute(RunOptions(
        task="semantic-seg",
        backend="unet",
        quiet=True,
        training=Training(flags={"epochs": args.epochs, "device": args.device}),
        output=Output(out=out),
    ))
    wall = time.perf_counter() - t0
    after = anchor_seconds_per_iter(data, data.meta(), config, device)

    from zoo.training import load_checkpoint

    history = load_checkpoint(result.run_dir / "checkpoint" / "last.pt")["history"]
    steady = history[1:] or history
    zoo_per_iter = sum(h["seconds"] for h in steady) / sum(h["iterations"] for h in steady)
    anchor = (before + after) / 2
    m = result.metrics
    timings = result.manifest.timings.model_dump(exclude_none=True)
    report = {
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} usable cpus, torch threads {torch.get_num_threads()}",
        "device": device,
        "config": {k: getattr(config, k) for k in ("epochs", "imgsz", "batch", "encoder", "lr", "loss")},
        "mIoU": m.get("mIoU"),
        "mDice": m.get("mDice"),
        "mIoU_foreground": m.get("mIoU_foreground"),
        "mDice_foreground": m.get("mDice_foreground"),
        "pixel_accuracy": m.get("pixel_accuracy"),
        "fit_seconds": timings.get("fit"),
        "predict_ms_per_image": timings.get("predict_per_image_ms"),
        "run_wall_seconds": round(wall, 1),
        "zoo_s_per_iter": round(zoo_per_iter, 3),
        "anchor_s_per_iter": round(anchor, 3),
        "anchor_before_after": [round(before, 3), round(after, 3)],
        "ratio_zoo_over_anchor": round(zoo_per_iter / anchor, 3),
        "run_dir": str(result.run_dir),
    }
    report["IoU"] = m.get("IoU")
    report["Dice"] = m.get("Dice")
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
