"""YOLACT through zoo on the demo data: what it learns, how fast it predicts against Mask
R-CNN, and what Fast NMS saves against standard NMS.

    .venv/bin/python bench/bench_yolact.py [--backend yolact|yolact++] [--skip-learning]
        [--checkpoint RUN_DIR] [--speed-imgsz 160 550] [--rounds 3] [--set key=value ...]

1. learning: the backend with its shipped defaults and the demo preset (configs/demo.yaml),
   trained by zoo.training on the demo's 96 training images and scored by zoo's evaluator
   on the 24 evaluation images (mask AP and box AP from the same predictions) with the last
   epoch's weights (zoo's default selection protocol); the fit time.
2. speed: per-image inference time (batch 1, ``predict`` of one image: resize, network,
   post-processing, masks back at the image's size as RLE) of YOLACT against ``mask-rcnn``
   at the same backbone (ResNet-18, FPN) and ``imgsz``, alternating rounds over the same
   images in one process. Both untrained, with the score threshold at 0 so each returns
   exactly ``--detections`` masks per image (100, COCO's cap and the worst case; 20, about
   the demo's cells per image): the same count for both.
   YOLACT is timed at the paper's 256 FPN channels and at the shipped 128.
3. Fast NMS: on the learned model's own candidates for the evaluation images, the time of
   Fast NMS against standard (sequential, torchvision) NMS, and the mask / box AP with each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def _data():
    from zoo.data.demo import ensure_demo
    from zoo.data.reading import read_dataset
    from zoo.data.split import make_split
    from zoo.tasks import get_task

    task = get_task("instance-seg")
    dataset = read_dataset(ensure_demo())
    split = make_split(dataset, task, val=0.2, seed=0)
    return task, dataset, dataset.subset(split.train), dataset.subset(split.val)


def _backend(name: str, task, meta, run_dir: Path, sets=(), flags=None, demo=True):
    from zoo.backend import RunContext
    from zoo.config import resolve_config
    from zoo.registry import get_registry

    cls = get_registry().backend(name).load()
    cfg = resolve_config(cls.Config, backend=name, task=task.name, flags={"device": "cpu", **(flags or {})},
                         sets=list(sets), demo=demo)
    return cls, cls(task, meta, cfg, RunContext(run_dir=run_dir, device="cpu"))


def score(backend, dataset, val) -> dict:
    """Mask AP and box AP (zoo's evaluator) of one prediction pass over ``val``."""
    from zoo.tasks import get_task

    preds = list(backend.predict(val.images))
    out = {}
    for name, key in (("instance-seg", "mask"), ("detect", "box")):
        ev = get_task(name).evaluator(dataset.meta())
        for record, pred in zip(val.images, preds):
            ev.process(record, pred)
        m = ev.evaluate()
        out.update({f"{key}_{k}": round(float(m[k]), 4) for k in ("AP", "AP50", "AP75")})
    return out


def learning(name: str, task, dataset, train, val, run_dir: Path, sets) -> tuple:
    from zoo.selection import Selection

    _, b = _backend(name, task, dataset.meta(), run_dir, sets)
    t0 = time.perf_counter()
    fit = b.fit(train, Selection.of(task))  # zoo's default protocol: the last epoch's weights
    seconds = time.perf_counter() - t0
    result = {"backend": name, "config": b.config.model_dump(mode="json"), "fit_seconds": round(seconds, 1),
              "iterations": fit["iterations"], "loss": round(fit["loss"], 4), **score(b, dataset, val)}
    return b, result


def speed(task, dataset, val, imgsz: int, rounds: int, detections: int) -> dict:
    """Median per-image predict() seconds of untrained yolact (fpn 256, fpn 128) and
    mask-rcnn (resnet18_fpn), batch 1, alternating, each returning ``detections`` masks."""
    import torch

    images = val.images[:8]
    contenders = {}
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {"imgsz": imgsz, "batch": 1, "epochs": 1}
        common = ["score_threshold=0.0", f"max_detections={detections}"]
        for label, name, sets in (
            ("yolact fpn256", "yolact", ["fpn_channels=256", *common]),
            ("yolact fpn128", "yolact", ["fpn_channels=128", *common]),
            ("mask-rcnn", "mask-rcnn", ["backbone=resnet18_fpn", *common]),
        ):
            _, b = _backend(name, task, dataset.meta(), Path(tmp) / label, sets, sizes, demo=False)
            torch.manual_seed(0)
            if name == "mask-rcnn":
                b.model = b._build(load_pretrained=False)
            else:
                b.model = b.build(b.anchor_sizes(val))
            b.model.eval()
            list(b.predict(images[:2]))  # warm-up
            contenders[label] = b
        times = {label: [] for label in contenders}
        counts = {}
        order = list(contenders)
        for r in range(rounds):
            for label in order if r % 2 == 0 else order[::-1]:
                b = contenders[label]
                for record in images:
                    t0 = time.perf_counter()
                    pred = next(iter(b.predict([record])))
                    times[label].append(time.perf_counter() - t0)
                    counts.setdefault(label, []).append(len(pred.detections))
    med = {label: statistics.median(t) for label, t in times.items()}
    return {
        "imgsz": imgsz,
        "max_detections": detections,
        "ms_per_image": {k: round(v * 1000, 1) for k, v in med.items()},
        "detections_per_image": {k: statistics.mean(v) for k, v in counts.items()},
        "mask_rcnn_over_yolact": {k: round(med["mask-rcnn"] / v, 2) for k, v in med.items() if k != "mask-rcnn"},
    }


def nms_comparison(b, dataset, val, reps: int = 20) -> dict:
    """Fast vs standard NMS on the model's own candidates (score > threshold; and every
    anchor, threshold 0, so top_k = 200 per class enter), and the AP of the whole pipeline
    with each."""
    import torch

    from zoo.plugins.yolact.backend import load_image
    from zoo.plugins.yolact.boxes import decode
    from zoo.plugins.yolact.nms import NMS

    c = b.config
    model = b.model.eval()
    timings = {}
    for threshold in (c.score_threshold, 0.0):
        cands = []
        with torch.no_grad():
            for record in val.images:
                out = model(load_image(record, c.imgsz)[None])
                probs = out["conf"][0].softmax(-1)[:, 1:]
                boxes = decode(out["loc"][0], model.anchors(out))
                keep = probs.max(1).values > threshold
                cands.append((boxes[keep], probs[keep].t().contiguous()))
        seconds = {}
        for name, fn in NMS.items():
            for boxes, scores in cands[:3]:
                fn(boxes, scores, c.nms_iou, c.top_k, threshold)  # warm-up
            t0 = time.perf_counter()
            for _ in range(reps):
                for boxes, scores in cands:
                    fn(boxes, scores, c.nms_iou, c.top_k, threshold)
            seconds[name] = (time.perf_counter() - t0) / (reps * len(cands))
        timings[f"score > {threshold}"] = {
            "candidates_per_image": round(statistics.mean(len(x) for x, _ in cands), 1),
            "ms_per_image": {k: round(v * 1000, 3) for k, v in seconds.items()},
            "standard_over_fast": round(seconds["standard"] / seconds["fast"], 2),
        }
    aps = {}
    for name in NMS:
        b.config = c.model_copy(update={"nms": name})
        aps[name] = score(b, dataset, val)
    b.config = c
    return {"time": timings, "AP": aps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="yolact", help="yolact, yolact++, or mask-rcnn for its learning figures")
    ap.add_argument("--skip-learning", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--checkpoint", help="a run dir with checkpoint/ (skips learning; used for the NMS part)")
    ap.add_argument("--speed-imgsz", type=int, nargs="+", default=[160, 550])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--detections", type=int, nargs="+", default=[100, 20], help="masks returned per image")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import torch

    report = {"machine": platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "load": os.getloadavg()}
    task, dataset, train, val = _data()
    with tempfile.TemporaryDirectory() as tmp:
        b = None
        if args.checkpoint:
            cls, _ = _backend(args.backend, task, dataset.meta(), Path(args.checkpoint), args.sets)
            _, probe = _backend(args.backend, task, dataset.meta(), Path(args.checkpoint), args.sets)
            b = cls.load(task, dataset.meta(), probe.config, probe.ctx)
            report["learned"] = {"checkpoint": args.checkpoint, **score(b, dataset, val)}
        elif not args.skip_learning:
            b, report["learned"] = learning(args.backend, task, dataset, train, val, Path(tmp) / "learn", args.sets)
        print(json.dumps(report, indent=1), flush=True)
        if b is not None and hasattr(b.config, "nms"):  # --backend mask-rcnn: learning only
            report["nms"] = nms_comparison(b, dataset, val)
            print(json.dumps(report["nms"], indent=1), flush=True)
        if not args.skip_speed:
            report["speed"] = [
                speed(task, dataset, val, s, args.rounds, n) for s in args.speed_imgsz for n in args.detections
            ]
            print(json.dumps(report["speed"], indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
