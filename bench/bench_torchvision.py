"""Faster R-CNN through zoo: wrapper overhead, and what the defaults learn on the demo data.

1. overhead: the training time of zoo's ``faster-rcnn`` backend (``fit``: the shared loop in
   zoo/training.py with its DataLoader, warm-up + cosine schedule, gradient clipping, a
   checkpoint per epoch) against a minimal hand-written loop (PIL -> tensor, plain SGD at a
   fixed rate, nothing else) training the same torchvision model, built by the same
   function with the same seed, on the same training images in the same batches.
   Alternating zoo / hand / hand / zoo so drift in the machine's load hits both sides
   alike (``--rounds`` pairs, order swapped each round); wall and process CPU time (user + sys, less sensitive to other processes on a
   shared machine). zoo's side runs under ``--select last`` (nothing scored during
   training, as the hand loop); the cost of ``--select best`` (scoring a selection split
   after each epoch) is printed on its own. Target: <= 1.03x.
2. learning: ``zoo run --task detect --backend faster-rcnn`` with the shipped defaults
   (plugins/tv_models/configs/faster-rcnn/detect.yaml) on the demo data: the shared evaluator's AP / AP50,
   the time it took, and the val AP after each epoch.

Usage: .venv/bin/python bench/bench_torchvision.py [--epochs 1] [--rounds 3] [--threads 1] [--device cpu]
       [--skip-overhead] [--skip-learning] [--learn-epochs N] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from zoo.pipeline.options import Output, Training


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _data():
    from zoo.data.demo import ensure_demo
    from zoo.data.reading import read_dataset
    from zoo.data.split import make_split
    from zoo.tasks import get_task

    task = get_task("detect")
    dataset = read_dataset(ensure_demo())
    split = make_split(dataset, task, val=0.2, seed=0)
    return task, dataset, dataset.subset(split.train), dataset.subset(split.val)


def _config(epochs: int, device: str, **extra):
    from zoo.config import resolve_config
    from zoo.plugins.tv_models.rcnn import RCNNConfig

    flags = {"epochs": epochs, "device": device}
    return resolve_config(RCNNConfig, backend="faster-rcnn", task="detect", flags=flags,
                          sets=[f"{k}={v}" for k, v in extra.items()])


def zoo_fit(task, meta, train, selection, cfg, device: str) -> tuple[float, float, int]:
    from zoo.backend import RunContext
    from zoo.registry import get_registry
    from zoo.selection import Selection

    FasterRCNN = get_registry().backend("faster-rcnn").load()

    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(run_dir=Path(tmp), device=device)
        b = FasterRCNN(task, meta, cfg, ctx)
        w, c = time.perf_counter(), _cpu()
        out = b.fit(train, Selection.of(task, selection))
        return time.perf_counter() - w, _cpu() - c, out["iterations"]


def hand_fit(meta, train, cfg, device: str) -> tuple[float, float, int]:
    """The anchor: what a user would write by hand around the same torchvision model."""
    import numpy as np
    import torch
    from PIL import Image

    from zoo.plugins.tv_models.rcnn import build_model

    w, c, iters = time.perf_counter(), _cpu(), 0  # both sides' times include building the model
    torch.manual_seed(cfg.seed)
    model = build_model("faster", cfg, len(meta.categories) + 1).to(device).train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                          momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    def sample(record):
        img = record.open()
        s = min(1.0, cfg.imgsz / max(img.size))
        if s < 1:
            img = img.resize((round(img.width * s), round(img.height * s)), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255
        keep = [i for i in record.instances if not i.ignore]
        boxes = torch.tensor([i.bbox for i in keep], dtype=torch.float32).reshape(-1, 4) * s
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        return x, {"boxes": boxes, "labels": torch.tensor([i.category + 1 for i in keep], dtype=torch.int64)}

    g = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.epochs):
        order = torch.randperm(len(train.images), generator=g).tolist()
        for k in range(0, len(order), cfg.batch):
            batch = [sample(train.images[i]) for i in order[k : k + cfg.batch]]
            images = [x.to(device) for x, _ in batch]
            targets = [{n: v.to(device) for n, v in t.items()} for _, t in batch]
            loss = sum(model(images, targets).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            iters += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - w, _cpu() - c, iters


def overhead(epochs: int, device: str, rounds: int) -> dict:
    task, dataset, train, val = _data()
    meta = dataset.meta()
    cfg = _config(epochs, device, amp=False)
    # untimed warm-up of both sides: first-call costs (imports, allocator growth, kernel
    # selection) would otherwise land on whichever side runs first
    few = train.subset([r.id for r in train.images[: cfg.batch]])
    zoo_fit(task, meta, few, None, cfg, device)
    hand_fit(meta, few, cfg, device)
    rows = {"zoo": [], "hand": []}
    pairs = []
    for r in range(rounds):
        for side in (("zoo", "hand") if r % 2 == 0 else ("hand", "zoo")):
            rows[side].append(zoo_fit(task, meta, train, None, cfg, device) if side == "zoo" else hand_fit(meta, train, cfg, device))
            print(f"  {side}: wall {rows[side][-1][0]:.2f} s, cpu {rows[side][-1][1]:.2f} s, "
                  f"{rows[side][-1][2]} iterations", flush=True)
        pairs.append((rows["zoo"][-1][1] / rows["hand"][-1][1], rows["zoo"][-1][0] / rows["hand"][-1][0]))
    z_wall, h_wall = min(r[0] for r in rows["zoo"]), min(r[0] for r in rows["hand"])
    z_cpu, h_cpu = min(r[1] for r in rows["zoo"]), min(r[1] for r in rows["hand"])
    # --select best, on a selection split of the training images' size (the val images here)
    with_val = zoo_fit(task, meta, train, val, cfg, device)
    return {
        "train_images": len(train), "epochs": epochs, "iterations": rows["zoo"][0][2], "rounds": rounds,
        "zoo_wall_s": round(z_wall, 2), "hand_wall_s": round(h_wall, 2), "ratio_wall": round(z_wall / h_wall, 3),
        "zoo_cpu_s": round(z_cpu, 2), "hand_cpu_s": round(h_cpu, 2), "ratio_cpu": round(z_cpu / h_cpu, 3),
        "ratio_cpu_median_of_pairs": round(statistics.median(p[0] for p in pairs), 3),
        "ratio_wall_median_of_pairs": round(statistics.median(p[1] for p in pairs), 3),
        "zoo_with_select_best_wall_s": round(with_val[0], 2),
    }


def learning(device: str, epochs: int | None, sets: list[str]) -> dict:
    import torch

    from zoo.pipeline.run import RunOptions, execute

    flags = {"device": device}
    if epochs:
        flags["epochs"] = epochs
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        result = execute(RunOptions(
            task="detect",
            backend="faster-rcnn",
            quiet=True,
            training=Training(flags=flags, sets=list(sets)),
            output=Output(out=Path(tmp)),
        ))
        wall = time.perf_counter() - t
        state = torch.load(result.run_dir / "checkpoint" / "last.pt", weights_only=True)
    m = result.metrics
    return {
        "AP": round(m["AP"], 4), "AP50": round(m["AP50"], 4), "AP75": round(m["AP75"], 4),
        "epochs": len(state["history"]), "run_wall_s": round(wall, 1),
        "train_s": round(sum(h["seconds"] for h in state["history"]), 1),
        "selection_AP_per_epoch": [round(h.get("val", float("nan")), 3) for h in state["history"]],
        "config": state["extra"]["config"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=1, help="epochs of the overhead comparison")
    ap.add_argument("--rounds", type=int, default=3, help="zoo/hand pairs of the overhead comparison")
    ap.add_argument("--learn-epochs", type=int, default=None, help="override the default epochs (learning)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="key=value over the defaults (learning)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared machine)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--skip-learning", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None
    out = {"machine": f"{platform.processor() or platform.machine()}, {args.threads} torch thread(s)"
           + (f", {gpu}" if gpu else ""), "torch": torch.__version__}
    if not args.skip_overhead:
        print("overhead (faster-rcnn fit, zoo vs hand-written loop):", flush=True)
        out["overhead"] = overhead(args.epochs, args.device, args.rounds)
        o = out["overhead"]
        print(f"  ratio zoo/hand (best of each): wall {o['ratio_wall']:.3f}x, cpu {o['ratio_cpu']:.3f}x; "
              f"median of pairs: cpu {o['ratio_cpu_median_of_pairs']:.3f}x (target <= 1.03x)", flush=True)
    if not args.skip_learning:
        print("learning (zoo run, shipped defaults, demo data):", flush=True)
        out["learning"] = learning(args.device, args.learn_epochs, args.sets)
        l_ = out["learning"]
        print(f"  AP {l_['AP']:.3f}, AP50 {l_['AP50']:.3f} after {l_['epochs']} epochs, "
              f"{l_['run_wall_s']:.0f} s in all ({l_['train_s']:.0f} s training)", flush=True)
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
