"""onnxruntime against torch, CPU milliseconds per image, for each backend `zoo export` covers.

    .venv/bin/python bench/bench_export.py [--backends unet,resnet18,...] [--demo-images N] [--out DIR]

Each backend trains one epoch on the demo data (speed does not depend on how well a model
learned), then `zoo export` exports it and predicts the run's val images with both engines,
one after the other in the same process: decoding, pre-processing, network and
post-processing, each engine after one untimed image (zoo.pipeline.export). The anchor is
torch on the same images: ratio = onnxruntime ms / torch ms (below 1: onnxruntime is faster).
The parity that the export proves is reported beside the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from zoo.pipeline.options import Output, Source, Training

#: backend -> (task, imgsz): the demo's sizes (160 px smears) for the dense and detection
#: models, 64 px for the classifiers
BACKENDS = {
    "unet": ("semantic-seg", 160),
    "fpn": ("semantic-seg", 160),
    "segresnet": ("semantic-seg", 160),
    "dynunet": ("semantic-seg", 160),
    "resnet18": ("classify", 64),
    "mobilenet_v3_small": ("classify", 64),
    "yolov8": ("detect", 160),
    "yolact": ("instance-seg", 160),
    "d2-faster-rcnn": ("detect", 160),
    "d2-mask-rcnn": ("instance-seg", 160),
    "nnunet": ("semantic-seg", None),  # nnU-Net plans its own patch (it refuses --imgsz)
}
#: what else a backend needs to train one short epoch: detectron2 scores every box of a
#: one-epoch model low (threshold 0: timing the post-processing of real boxes), nnU-Net's
#: epoch is 250 iterations unless told
EXTRA_FLAGS = {
    "d2-faster-rcnn": {"score_threshold": 0.0}, "d2-mask-rcnn": {"score_threshold": 0.0},
    "nnunet": {"iterations_per_epoch": 10, "val_iterations_per_epoch": 2},
}


def bench(backend: str, task: str, imgsz: int | None, out: Path, data: Path | None = None) -> dict:
    from zoo.pipeline.export import export_run
    from zoo.pipeline.run import RunOptions, execute

    flags = {"epochs": 1, "batch": 8, "device": "cpu", **({"imgsz": imgsz} if imgsz else {}),
             **EXTRA_FLAGS.get(backend, {})}
    run = execute(RunOptions(
        task=task,
        backend=backend,
        quiet=True,
        source=Source(path=data),
        training=Training(flags=flags),
        output=Output(out=out),
    )).run_dir
    result = export_run(run, device="cpu")
    p = result.parity
    return {"backend": backend, "task": task, "imgsz": imgsz, "images": p.images, "torch_ms": p.torch_ms,
            "onnxruntime_ms": p.onnx_ms, "ratio": round(p.onnx_ms / p.torch_ms, 3), "metric": p.metric,
            "metric_difference": p.difference,
            "raw_max_abs_diff": (result.raw_parity or {}).get("max_abs_diff")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--demo-images", type=int, default=None,
                    help="a demo of this many 160-px smears instead of the built-in 120 (a loaded machine)")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-export-"))
    data = None
    if args.demo_images:
        from zoo.data.demo import write_demo

        data = out / "demo"
        write_demo(data, images=args.demo_images, size=160, seed=0)
    rows = []
    for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
        task, imgsz = BACKENDS[name]
        rows.append(bench(name, task, imgsz, out, data))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nthreads: torch {os.environ.get('OMP_NUM_THREADS', 'default')}; {os.cpu_count()} CPUs")
    print("| backend | task | imgsz | val images | torch ms / img | onnxruntime ms / img | x torch | "
          "main metric diff | raw max diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['task']} | {r['imgsz'] or 'plan'} | {r['images']} | {r['torch_ms']:.1f} | "
              f"{r['onnxruntime_ms']:.1f} | {r['ratio']:.2f} | {r['metric_difference']:.1g} | "
              f"{r['raw_max_abs_diff']:.1g} |")


if __name__ == "__main__":
    main()
