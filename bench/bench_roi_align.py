"""RoIAlign on a CPU: torchvision's kernel against zoo's sparse product
(``plugins/tv_models/roi_align.py``), forward and backward, on an R-CNN's pyramid.

    .venv/bin/python bench/bench_roi_align.py [--rois 128,512] [--repeats 5]

Features as the demo's Faster R-CNN sees them (batch 4, 256 channels, a 160-px image's FPN
levels 40, 20, 10 and 5 px), random boxes in the image, the 7 x 7 box pool and the 14 x 14
mask pool, sampling ratio 2. Prints milliseconds per call (median of ``--repeats``) and the
largest difference from torchvision's outputs and gradients.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import OrderedDict


def pyramid(rois: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    feats = OrderedDict((str(i), torch.randn(4, 256, 40 >> i, 40 >> i, generator=g, requires_grad=True))
                        for i in range(4))
    boxes = []
    for _ in range(4):
        b = torch.rand(rois // 4, 4, generator=g) * 140
        b[:, 2:] = (b[:, :2] + torch.rand(rois // 4, 2, generator=g) * 100 + 1).clamp(max=160)
        boxes.append(b)
    return feats, boxes, [(160, 160)] * 4


def timed(pool, feats, boxes, shapes, grad, repeats: int):
    import torch

    levels = [feats[k] for k in "0123"]
    forward, backward = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        out = pool(feats, boxes, shapes)
        forward.append(time.perf_counter() - t)
        t = time.perf_counter()
        grads = torch.autograd.grad(out, levels, grad)
        backward.append(time.perf_counter() - t)
    return out.detach(), grads, statistics.median(forward) * 1e3, statistics.median(backward) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rois", default="128,512")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    import torch
    from torchvision.ops import MultiScaleRoIAlign

    from zoo.plugins.tv_models.roi_align import SparseMultiScaleRoIAlign

    print(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__}))
    for size in ((7, 7), (14, 14)):
        for n in (int(v) for v in args.rois.split(",")):
            reference = MultiScaleRoIAlign(["0", "1", "2", "3"], size, 2)
            sparse = SparseMultiScaleRoIAlign.like(reference).train()
            feats, boxes, shapes = pyramid(n)
            grad = torch.randn(n, 256, *size)
            want, want_g, ref_f, ref_b = timed(reference, feats, boxes, shapes, grad, args.repeats)
            got, got_g, sp_f, sp_b = timed(sparse, feats, boxes, shapes, grad, args.repeats)
            print(json.dumps({
                "pool": f"{size[0]}x{size[1]}", "rois": n,
                "torchvision_ms": {"forward": round(ref_f, 1), "backward": round(ref_b, 1)},
                "sparse_ms": {"forward": round(sp_f, 1), "backward": round(sp_b, 1)},
                "max_diff": {"output": float((got - want).abs().max()),
                             "grad": max(float((a - b).abs().max()) for a, b in zip(got_g, want_g))},
            }), flush=True)


if __name__ == "__main__":
    main()
