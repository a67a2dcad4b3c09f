"""Cost as the data grows: time and peak memory of zoo's data stages on 1k, 10k (100k) images.

Synthetic labelme sets (``zoo.data.demo.write_demo``: small blood-smear images with several
polygon cells each) of each size; every stage runs in a fresh process (its peak resident
memory is the process's ``ru_maxrss``, interpreter and imports included):

* ``check``    ``zoo check DIR`` (every rule, pixel digests of every image)
* ``convert``  ``zoo convert DIR --to coco --no-images``
* ``prepare``  the run's prepare stage (read, check, split, selection split, ground truth
               written; ``zoo run`` up to training), mask-rcnn instance-seg
* ``evaluate`` the COCO evaluator (segm) on the ground truth fed back as detections

A stage whose time grows faster than the images (per-image time rising with n) is what to
fix; memory should grow with the annotations, never with the pixels.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_scale.py [--sizes 1000,10000] [--size 32] [--work /tmp/zoo-scale]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from zoo.pipeline.options import Output, Source, Training

os.environ.setdefault("OMP_NUM_THREADS", "1")
STAGES = ("check", "convert", "prepare", "evaluate")


def stage_check(data: Path, work: Path) -> None:
    from zoo.cli import main

    with contextlib.suppress(SystemExit):
        main(["check", str(data)])


def stage_convert(data: Path, work: Path) -> None:
    from zoo.cli import main

    main(["convert", str(data), "--to", "coco", "--no-images", "--out", str(work / f"coco-{time.time_ns()}")])


def stage_prepare(data: Path, work: Path) -> None:
    from zoo.pipeline.prepare import Preparer, Setup
    from zoo.pipeline.run import RunOptions

    preparer = Preparer(Setup.of(RunOptions(
        task="instance-seg",
        backend="mask-rcnn",
        quiet=True,
        source=Source(path=data),
        training=Training(flags={"epochs": 1, "imgsz": 64, "device": "cpu"}),
        output=Output(out=work / "runs"),
    )))
    try:
        preparer.prepare()
    finally:
        preparer.release()


def stage_evaluate(data: Path, work: Path) -> float:
    """The evaluator alone (reading the data and building the detections not timed)."""
    from zoo.evaluation import evaluate
    from zoo.evaluation.coco import evaluation_ground_truth
    from zoo.predictions import Detection, InstancePredictions
    from zoo.data.reading import read_dataset
    from zoo.tasks import get_task

    ds = read_dataset(data)
    # the ground truth exactly as scored (masks of polygons, and of the keypoint-only
    # platelets), fed back as detections
    gt = evaluation_ground_truth(ds, "segm")
    category = {cid: k for k, cid in enumerate(ds.coco_category_ids())}
    dets: dict[int, list] = {}
    for a in gt["annotations"]:
        if not a.get("iscrowd"):
            dets.setdefault(a["image_id"], []).append(
                Detection(category[a["category_id"]], 1.0, tuple(a["bbox"]), mask=a["segmentation"]))
    preds = [InstancePredictions(r.id, dets.get(im["id"], [])) for r, im in zip(ds.images, gt["images"], strict=True)]
    t0 = time.perf_counter()
    metrics = evaluate(get_task("instance-seg"), ds, preds)
    seconds = time.perf_counter() - t0
    assert abs(metrics["AP"] - 1.0) < 1e-9, metrics["AP"]  # ground truth fed back scores 1
    return seconds


def child(stage: str, data: Path, work: Path) -> None:
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        own = globals()[f"stage_{stage}"](data, work)
    seconds = own if isinstance(own, float) else time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb}))


def make_set(n: int, work: Path, size: int = 32) -> Path:
    from zoo.data.demo import write_demo

    out = work / (f"labelme-{n}" if size == 32 else f"labelme-{n}-{size}px")
    if not (out / ".complete").is_file():
        write_demo(out, images=n, size=size, seed=0)
        (out / ".complete").write_text("ok")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--work", type=Path, default=Path("/tmp/zoo-scale"))
    # larger images, same count: a stage holding every image's pixels shows as memory growing with the size
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--stage")  # internal: run one stage in this process
    ap.add_argument("--data", type=Path)
    a = ap.parse_args()
    if a.stage:
        return child(a.stage, a.data, a.work)
    a.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in [int(s) for s in a.sizes.split(",")]:
        data = make_set(n, a.work, a.size)
        for stage in a.stages.split(","):
            out = subprocess.run([sys.executable, __file__, "--stage", stage, "--data", str(data), "--work", str(a.work)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((stage, n, r["seconds"], r["peak_mb"]))
            print(f"{stage:9s} {n:>7d} images of {a.size} px  {r['seconds']:8.2f} s  {1000 * r['seconds'] / n:7.3f} ms/image  "
                  f"peak {r['peak_mb']:7.0f} MB", flush=True)


if __name__ == "__main__":
    main()
