"""HD95 / ASSD benchmark: zoo's boundary distances vs MONAI's on 512x512 label maps.

Pairs of 512x512 label maps with 3 foreground classes (smooth random blobs; the prediction
is the truth's field thresholded a little differently plus noise, so edges are realistic
and ragged). Timed per image over all foreground classes:

* MONAI: ``compute_hausdorff_distance(percentile=95)`` alone, and it plus
  ``compute_average_surface_distance(symmetric=True)`` (what zoo reports), from one-hot
  tensors built beforehand (not timed);
* zoo: ``BoundaryDistances.add`` -- the evaluator's path, HD95 *and* ASSD from the label
  maps, one-hot masks made inside (timed).

Every value must agree to 1e-5 (relative) and the script prints the largest difference:
MONAI takes the 95th percentile with ``torch.quantile`` in float32, whose interpolation
position loses digits when an image has thousands of edge pixels (zoo interpolates in
float64); on the tests' smaller masks the two agree to 1e-6. The script prints seconds per
image and the ratios MONAI / zoo (> 1: zoo is faster).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_hd95.py [--images 20]``
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def make_maps(n: int, size: int = 512, classes: int = 3, seed: int = 0):
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        truth, pred = np.zeros((size, size), np.uint8), np.zeros((size, size), np.uint8)
        for c in range(1, classes + 1):
            field = gaussian_filter(rng.random((size, size)), 12)
            cut = np.quantile(field, 0.9)
            truth[field > cut] = c
            noisy = field + gaussian_filter(rng.random((size, size)), 3) * 0.02
            pred[noisy > np.quantile(noisy, 0.9)] = c
        pairs.append((truth, pred))
    return pairs


def run_monai(pairs, classes: int, with_assd: bool):
    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    def one_hot(m):
        return torch.from_numpy(np.stack([m == c for c in range(classes + 1)])[None].astype(np.float32))

    tensors = [(one_hot(p), one_hot(t)) for t, p in pairs]
    out = []
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p, t in tensors:
            hd = compute_hausdorff_distance(p, t, percentile=95)[0].tolist()
            asd = compute_average_surface_distance(p, t, symmetric=True)[0].tolist() if with_assd else None
            out.append((hd, asd))
    return (time.perf_counter() - t0) / len(pairs), out


def run_zoo(pairs, classes: int):
    from zoo.evaluation.semantic import BoundaryDistances

    t0 = time.perf_counter()
    per_image = []
    for t, p in pairs:
        d = BoundaryDistances(classes + 1)
        d.add(t, p)
        per_image.append(([v[0] for v in d.hd95[1:]], [v[0] for v in d.assd[1:]]))
    return (time.perf_counter() - t0) / len(pairs), per_image


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--classes", type=int, default=3)
    args = ap.parse_args()
    pairs = make_maps(args.images, classes=args.classes)
    run_zoo(pairs[:1], args.classes), run_monai(pairs[:1], args.classes, True)  # imports, caches
    t_zoo, ours = run_zoo(pairs, args.classes)
    t_hd, _ = run_monai(pairs, args.classes, with_assd=False)
    t_both, ref = run_monai(pairs, args.classes, with_assd=True)
    worst = max(abs(a - b) / max(1.0, abs(b)) for (h, s), (rh, rs) in zip(ours, ref)
                for a, b in zip(h + s, rh + rs))
    assert worst < 1e-5, worst
    print(f"{args.images} maps 512x512, {args.classes} foreground classes; max relative difference {worst:.1e}")
    print(f"MONAI HD95        {t_hd * 1e3:8.1f} ms/image")
    print(f"MONAI HD95 + ASSD {t_both * 1e3:8.1f} ms/image")
    print(f"zoo   HD95 + ASSD {t_zoo * 1e3:8.1f} ms/image")
    print(f"ratio MONAI HD95 / zoo HD95+ASSD: {t_hd / t_zoo:.2f}x; MONAI both / zoo: {t_both / t_zoo:.2f}x")


if __name__ == "__main__":
    main()
