"""What grouping costs a run's prepare step: ``zoo.data.groups.group_images`` (the group rule,
and duplicate images found by byte size, bytes, then pixels) against reading the same folder
(``read_dataset``, the anchor), on class folders of PNGs named ``P<patient>_s<slice>.png``.

Two folders of the same size: *noise* (random pixels: every PNG the same byte size, the worst
case, where every file is read, hashed and decoded) and *smooth* (patterns that compress to
many different sizes, as photographs and scans do; files are still decoded where sizes
collide). A copy of one image under another patient's name checks that the duplicate is found.

Run: ``.venv/bin/python bench/bench_groups.py [--images 2000] [--size 128] [--out DIR]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def write_folder(root: Path, kind: str, n: int, size: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = root / kind / "benign"
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size]
    for k in range(n):
        if kind == "noise":
            a = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        else:
            g = np.sin(xx / (3 + k % 17)) + np.cos(yy / (2 + k % 13)) + rng.random((size, size)) * 0.3
            a = np.repeat((g * 60 + 120).clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)
        Image.fromarray(a).save(folder / f"P{k // 4:05d}_s{k % 4}.png")
    shutil.copy(folder / "P00000_s0.png", folder / f"P{n:05d}_s0.png")  # one duplicate, another patient
    return root / kind


def main() -> None:
    from zoo.data.groups import group_images
    from zoo.data.reading import read_dataset

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    root = a.out or Path(tempfile.mkdtemp())
    for kind in ("noise", "smooth"):
        folder = write_folder(root, kind, a.images, a.size)
        t0 = time.perf_counter()
        ds = read_dataset(folder)
        read = time.perf_counter() - t0
        t0 = time.perf_counter()
        g = group_images(ds, r"(P\d+)_")
        grouping = time.perf_counter() - t0
        sizes = len({p.stat().st_size for p in folder.rglob("*.png")})
        assert len(g.duplicates) == 1, g.duplicates
        print(f"{kind}: {len(ds)} PNGs ({sizes} distinct byte sizes): read {read:.2f} s, group_images "
              f"{grouping:.2f} s = {grouping / read:.2f}x reading; {g.count(g.of)} groups, 1 duplicate found")
    if a.out is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
