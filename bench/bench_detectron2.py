"""detectron2 through zoo: wrapper overhead, scratch stability, and what d2-faster-rcnn
learns on the demo data next to torchvision's faster-rcnn.

1. overhead: the training time of zoo's ``d2-faster-rcnn`` (``fit``: the split registered
   in memory, zoo's RecordMapper, detectron2's SimpleTrainer with zoo's progress bar, clipping
   and tensor-only checkpoint per epoch) against detectron2's own trainer as its
   documentation sets it up: the same config (built by the same function), the same dicts
   registered in DatasetCatalog, detectron2's DatasetMapper reading the files, its
   TrainingSampler with the same seed, SimpleTrainer with its IterationTimer, LRScheduler and
   PeriodicCheckpointer (a DetectionCheckpointer save per epoch). Alternating zoo / d2 /
   d2 / zoo (``--rounds`` pairs); wall and process CPU time. Target: <= 1.03x.
2. scratch: ``--scratch-iters`` steps from random weights with the model zoo's own recipe
   (FrozenBN, FREEZE_AT 2, lr 0.02, no clipping) and with zoo's (BN, nothing frozen,
   lr 0.01, warm-up, clipping): the first iteration whose loss is not finite, if any.
3. learning: ``zoo run --task detect`` with the shipped defaults on the demo data for
   ``faster-rcnn`` (torchvision) and ``d2-faster-rcnn`` side by side: the shared
   evaluator's AP / AP50 / AP75 and the time each took (``--learn-epochs N`` shortens both).

Usage: .venv/bin/python bench/bench_detectron2.py [--epochs 1] [--rounds 2] [--images 48]
       [--scratch-iters 20] [--learn-epochs N] [--skip-overhead] [--skip-scratch] [--skip-learning]
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


def _data(images: int):
    from zoo.data.demo import ensure_demo
    from zoo.data.reading import read_dataset
    from zoo.data.split import make_split
    from zoo.tasks import get_task

    task = get_task("detect")
    dataset = read_dataset(ensure_demo())
    split = make_split(dataset, task, val=0.2, seed=0)
    train = dataset.subset(split.train[:images])
    return task, dataset, train, dataset.subset(split.val)


def _config(epochs: int, *sets: str):
    from zoo.config import resolve_config
    from zoo.plugins.detectron2.settings import D2Config

    return resolve_config(D2Config, backend="d2-faster-rcnn", task="detect",
                          flags={"epochs": epochs, "imgsz": 160, "device": "cpu"}, sets=list(sets))


def zoo_fit(task, meta, train, val, config) -> tuple[float, float, int]:
    from zoo.backend import RunContext
    from zoo.registry import get_registry
    from zoo.selection import Selection

    D2FasterRCNN = get_registry().backend("d2-faster-rcnn").load()

    with tempfile.TemporaryDirectory() as tmp:
        b = D2FasterRCNN(task, meta, config, RunContext(run_dir=Path(tmp), device="cpu"))
        w, c = time.perf_counter(), _cpu()
        out = b.fit(train, Selection.of(task))  # no selection split: detectron2's side scores nothing either
        return time.perf_counter() - w, _cpu() - c, out["iterations"]


def d2_fit(meta, train, config) -> tuple[float, float, int]:
    """detectron2's own way: DatasetCatalog, DatasetMapper on the files, SimpleTrainer with
    its standard hooks and its own checkpointer."""
    import math

    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.data import DatasetMapper, build_detection_train_loader, get_detection_dataset_dicts
    from detectron2.data.samplers import TrainingSampler
    from detectron2.engine import SimpleTrainer, hooks
    from detectron2.modeling import build_model
    from detectron2.solver import build_lr_scheduler, build_optimizer

    from zoo.plugins.detectron2.data import registered
    from zoo.plugins.detectron2.settings import build_cfg

    with tempfile.TemporaryDirectory() as tmp, registered("bench", train.images, meta, masks=False, num_keypoints=0) as name:
        w, c = time.perf_counter(), _cpu()
        dicts = get_detection_dataset_dicts([name], filter_empty=True)
        per_epoch = math.ceil(len(dicts) / config.batch)
        cfg = build_cfg("faster", "detect", meta, config, "cpu", from_weights=False, max_iter=per_epoch * config.epochs)
        cfg.defrost()
        cfg.DATASETS.TRAIN = (name,)
        model = build_model(cfg)
        optimizer = build_optimizer(cfg, model)
        scheduler = build_lr_scheduler(cfg, optimizer)
        loader = build_detection_train_loader(cfg, dataset=dicts, mapper=DatasetMapper(cfg, True),
                                              sampler=TrainingSampler(len(dicts), seed=cfg.SEED))
        trainer = SimpleTrainer(model, loader, optimizer)
        trainer.register_hooks([
            hooks.IterationTimer(), hooks.LRScheduler(optimizer, scheduler),
            hooks.PeriodicCheckpointer(DetectionCheckpointer(model, tmp, optimizer=optimizer, scheduler=scheduler),
                                       per_epoch),
        ])
        trainer.train(0, cfg.SOLVER.MAX_ITER)
        return time.perf_counter() - w, _cpu() - c, cfg.SOLVER.MAX_ITER


def overhead(epochs: int, rounds: int, images: int) -> dict:
    task, dataset, train, val = _data(images)
    meta = dataset.meta()
    config = _config(epochs)
    few = train.subset([r.id for r in train.images[: config.batch]])
    zoo_fit(task, meta, few, val, _config(1))  # untimed warm-up of both sides (imports, allocator)
    d2_fit(meta, few, _config(1))
    rows = {"zoo": [], "d2": []}
    pairs = []
    for r in range(rounds):
        for side in (("zoo", "d2") if r % 2 == 0 else ("d2", "zoo")):
            rows[side].append(zoo_fit(task, meta, train, val, config) if side == "zoo" else d2_fit(meta, train, config))
            print(f"  {side}: wall {rows[side][-1][0]:.2f} s, cpu {rows[side][-1][1]:.2f} s, "
                  f"{rows[side][-1][2]} iterations", flush=True)
        pairs.append((rows["zoo"][-1][1] / rows["d2"][-1][1], rows["zoo"][-1][0] / rows["d2"][-1][0]))
    z_wall, d_wall = min(r[0] for r in rows["zoo"]), min(r[0] for r in rows["d2"])
    z_cpu, d_cpu = min(r[1] for r in rows["zoo"]), min(r[1] for r in rows["d2"])
    return {
        "train_images": len(train), "epochs": epochs, "iterations": rows["zoo"][0][2], "rounds": rounds,
        "zoo_wall_s": round(z_wall, 2), "d2_wall_s": round(d_wall, 2), "ratio_wall": round(z_wall / d_wall, 3),
        "zoo_cpu_s": round(z_cpu, 2), "d2_cpu_s": round(d_cpu, 2), "ratio_cpu": round(z_cpu / d_cpu, 3),
        "ratio_cpu_median_of_pairs": round(statistics.median(p[0] for p in pairs), 3),
        "ratio_wall_median_of_pairs": round(statistics.median(p[1] for p in pairs), 3),
    }


def scratch(iters: int, images: int) -> dict:
    """The first non-finite iteration (None: all finite) of each recipe from random weights."""
    from zoo.errors import ZooError

    task, dataset, train, val = _data(images)
    recipes = {
        "model zoo (FrozenBN, FREEZE_AT 2, lr 0.02, no clip)": _config(
            1, "norm=FrozenBN", "lr=0.02", "grad_clip=0", "warmup_iters=0",
            "opts={MODEL.BACKBONE.FREEZE_AT: 2, MODEL.RESNETS.STRIDE_IN_1X1: true}"),
        "zoo (BN, nothing frozen, lr 0.01, warm-up, clip 10)": _config(1),
    }
    out = {}
    for name, config in recipes.items():
        config = config.model_copy(update={"epochs": max(1, -(-iters * config.batch // len(train)))})
        try:
            zoo_fit(task, dataset.meta(), train, val, config)
            out[name] = "finite"
        except ZooError as e:
            out[name] = str(e).split(";")[0]
        print(f"  {name}: {out[name]}", flush=True)
    return out


def learning(epochs: int | None, backends: list[str]) -> dict:
    from zoo.pipeline.run import RunOptions, execute

    flags = {"device": "cpu", **({"epochs": epochs} if epochs else {})}
    out = {}
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            result = execute(RunOptions(
                task="detect",
                backend=backend,
                quiet=True,
                training=Training(flags=flags),
                output=Output(out=Path(tmp)),
            ))
            m = result.metrics
            out[backend] = {"AP": round(m["AP"], 4), "AP50": round(m["AP50"], 4), "AP75": round(m["AP75"], 4),
                            "run_wall_s": round(time.perf_counter() - t, 1)}
        print(f"  {backend}: {out[backend]}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=1, help="epochs of the overhead comparison")
    ap.add_argument("--rounds", type=int, default=2, help="zoo/d2 pairs of the overhead comparison")
    ap.add_argument("--images", type=int, default=48, help="training images of the overhead and scratch runs")
    ap.add_argument("--scratch-iters", type=int, default=20)
    ap.add_argument("--learn-epochs", type=int, default=None, help="override the shipped epochs (learning)")
    ap.add_argument("--learn-backends", default="faster-rcnn,d2-faster-rcnn", help="backends of the learning runs")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared machine)")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--skip-scratch", action="store_true")
    ap.add_argument("--skip-learning", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    import detectron2
    import torch

    torch.set_num_threads(args.threads)
    out = {"machine": f"{platform.processor() or platform.machine()}, {args.threads} torch thread(s)",
           "torch": torch.__version__, "detectron2": detectron2.__version__}
    if not args.skip_overhead:
        print("overhead (d2-faster-rcnn fit, zoo vs detectron2's own trainer):", flush=True)
        out["overhead"] = o = overhead(args.epochs, args.rounds, args.images)
        print(f"  ratio zoo/d2 (best of each): wall {o['ratio_wall']:.3f}x, cpu {o['ratio_cpu']:.3f}x; "
              f"median of pairs: cpu {o['ratio_cpu_median_of_pairs']:.3f}x (target <= 1.03x)", flush=True)
    if not args.skip_scratch:
        print(f"scratch stability ({args.scratch_iters} iterations from random weights):", flush=True)
        out["scratch"] = scratch(args.scratch_iters, args.images)
    if not args.skip_learning:
        print("learning (zoo run, shipped defaults, demo data):", flush=True)
        out["learning"] = learning(args.learn_epochs, args.learn_backends.split(","))
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
