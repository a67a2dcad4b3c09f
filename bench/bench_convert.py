"""labelme -> COCO: ``zoo convert`` against the ``labelme2coco`` package, whole process.

Generates N labelme files (3-12 polygons of 6-20 vertices each, 640x480, one real JPEG
hard-linked per image so that every ``imagePath`` exists), then runs, each in a fresh
process, timed wall clock and peak RSS (``os.wait4``):

* ``labelme2coco.convert(folder, out)`` (the anchor, from PyPI);
* a bare ``json.load`` + ``json.dump`` loop over the same files (the floor of a naive
  converter);
* ``zoo convert folder --to coco --out out --no-images`` (default geometry: area and box of
  the painted pixels, as labelme's own labelme2coco.py);
* the same at N/4, to show how peak memory grows with N.

Usage: ``python bench/bench_convert.py [N]`` (default 10000). Prints a table and the ratio.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LABELS = ["rbc", "wbc", "platelet", "tumour", "stroma", "vessel"]


def generate(folder: Path, n: int, seed: int = 0) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    proto = folder / "_proto.jpg"
    Image.new("RGB", (640, 480), (200, 150, 160)).save(proto)
    for i in range(n):
        shapes = []
        for _ in range(rng.randint(3, 12)):
            cx, cy = rng.uniform(40, 600), rng.uniform(40, 440)
            r = rng.uniform(5, 40)
            k = rng.randint(6, 20)
            pts = []
            for j in range(k):
                a = 2 * 3.141592653589793 * j / k
                rr = r * rng.uniform(0.7, 1.0)
                import math

                pts.append([cx + rr * math.cos(a), cy + rr * math.sin(a)])
            shapes.append({"label": rng.choice(LABELS), "points": pts, "group_id": None,
                           "description": "", "shape_type": "polygon", "flags": {}, "mask": None})
        stem = f"img_{i:05d}"
        os.link(proto, folder / f"{stem}.jpg")
        data = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": f"{stem}.jpg",
                "imageData": None, "imageHeight": 480, "imageWidth": 640}
        (folder / f"{stem}.json").write_text(json.dumps(data, indent=2))
    proto.unlink()


BARE = """
import json, sys, pathlib
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
allj = [json.loads(f.read_text()) for f in sorted(src.glob("*.json"))]
(out / "all.json").write_text(json.dumps(allj))
"""

L2C = """
import sys, logging
logging.disable(logging.INFO)
import labelme2coco
labelme2coco.convert(sys.argv[1], sys.argv[2])
"""


def run(cmd: list[str], env=None) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one process."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{err[-2000:]}")
    return wall, ru.ru_maxrss / 1024


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="bench_convert_"))
    env = dict(os.environ, TQDM_DISABLE="1")
    try:
        big, small = tmp / "big", tmp / "small"
        t = time.perf_counter()
        generate(big, n)
        generate(small, max(1, n // 4))
        size_mb = sum(f.stat().st_size for f in big.glob("*.json")) / 2**20
        print(f"generated {n} + {n // 4} labelme files ({size_mb:.0f} MiB of JSON) in {time.perf_counter() - t:.1f} s")
        zoo = [py, "-m", "zoo", "convert", "--to", "coco", "--no-images", "--from", "labelme"]
        rows = []
        rows.append(("labelme2coco 0.2.6", n, *run([py, "-c", L2C, str(big), str(tmp / "l2c")], env)))
        rows.append(("bare json load+dump", n, *run([py, "-c", BARE, str(big), str(tmp / "bare")], env)))
        rows.append(("zoo convert --to coco", n, *run(zoo[:3] + [zoo[3], str(big)] + zoo[4:] + ["--out", str(tmp / "zoo")], env)))
        rows.append(("zoo convert --to coco", n // 4, *run(zoo[:3] + [zoo[3], str(small)] + zoo[4:] + ["--out", str(tmp / "zoo_s")], env)))
        out_mb = (tmp / "zoo" / "annotations.json").stat().st_size / 2**20
        print(f"\n{'tool':28s} {'files':>6s} {'wall s':>8s} {'peak MiB':>9s}")
        for name, k, wall, mem in rows:
            print(f"{name:28s} {k:6d} {wall:8.2f} {mem:9.0f}")
        l2c, bare, z, zs = rows
        print(f"\nzoo is {l2c[2] / z[2]:.2f}x faster than labelme2coco (target >= 3x), "
              f"{bare[2] / z[2]:.2f}x the bare json loop")
        print(f"peak memory: zoo {z[3]:.0f} MiB vs labelme2coco {l2c[3]:.0f} MiB; "
              f"zoo at N/4 {zs[3]:.0f} MiB -> +{(z[3] - zs[3]) / (0.75 * n) * 1024:.1f} KiB per file "
              f"(output COCO JSON: {out_mb:.0f} MiB for {n} files)")
        c = json.loads((tmp / "zoo" / "annotations.json").read_text())
        print(f"zoo wrote {len(c['images'])} images, {len(c['annotations'])} annotations")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
