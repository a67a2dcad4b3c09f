"""A training sample made from the file every step against one made from pixels decoded
once (``zoo.training.cache.DecodedOnce``), per backend family, on the demo written at a
given size.

    .venv/bin/python bench/bench_decode_once.py [--sizes 160,1024] [--images 48]

For each size: the demo written at that size, then milliseconds per sample (one thread,
second of two passes) for the resnet18 classifier's training transform at 128 px
(crop 0.6, flips, jitter) and Faster / Mask R-CNN's at 160 px (flip), decoding the file each
time (``sample(decode(record))``, what training did before) and from the cache; and the
seconds ``decode_once`` took.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def per_sample_ms(fn, records) -> float:
    for _ in range(2):  # the first pass warms caches and allocators
        t = time.perf_counter()
        for r in records:
            fn(r)
    return (time.perf_counter() - t) / len(records) * 1e3


def families():
    from zoo.plugins.tv_models.classifiers import ClassifierConfig, ClassSamples, transforms
    from zoo.plugins.tv_models.rcnn import DetectionSamples

    cfg = ClassifierConfig(imgsz=128, crop_scale=0.6)
    return {
        "resnet18 classify (128 px)": lambda: ClassSamples(transforms(cfg, train=True), 128, 0.6),
        "faster-rcnn (160 px)": lambda: DetectionSamples("box", 160, hflip=0.5),
        "mask-rcnn (160 px)": lambda: DetectionSamples("mask", 160, hflip=0.5),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="160,1024")
    p.add_argument("--images", type=int, default=48)
    args = p.parse_args()

    import torch

    from zoo.data.demo import write_demo
    from zoo.data.reading import read_dataset

    torch.set_num_threads(1)
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            write_demo(Path(tmp) / "demo", images=args.images, size=size)
            records = read_dataset(Path(tmp) / "demo", "auto").images
            for name, make in families().items():
                usable = [r for r in records if r.labels] if "classify" in name else records
                fresh, cached = make(), make()
                t = time.perf_counter()
                cached.decode_once(usable, None)
                once = time.perf_counter() - t
                print(json.dumps({
                    "image_px": size, "backend": name, "images": len(usable),
                    "ms_per_sample": {"file_every_step": round(per_sample_ms(fresh, usable), 2),
                                      "decoded_once": round(per_sample_ms(cached, usable), 2)},
                    "decode_once_s": round(once, 2), "cache_bytes": cached.cache.nbytes,
                }), flush=True)


if __name__ == "__main__":
    main()
