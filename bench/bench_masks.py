"""Reading an image + mask folder (``--from masks``) against a plain PIL loop over the same files.

Generates N pairs ``images/<k>.jpg`` + ``masks/<k>.png`` (512 x 512, a binary mask 0/255 with
one or two blobs; 16 distinct pairs, the others hard links to them, so that the folder is
quick to make and costs no disk), then times in this process, R rounds each (process CPU time: the machine is shared):

* the anchor: the plain PIL loop a user writes over the pairs (each image loaded as RGB, each
  mask into numpy), and, for scale, the least any reader must do (each image's header, each
  mask decoded);
* ``read_dataset(folder, "masks")`` (pairing, image headers, masks decoded, classes found,
  one RLE per class) and ``read_dataset(folder)`` (format detection included).

The ratio reader / anchor is the figure (target <= 1.5). Memory: the peak traced by
``tracemalloc`` while reading N/3 and N pairs; flat in N means masks are not kept decoded
(what grows is the RLE strings and the records, a few hundred bytes per image).

Usage: ``python bench/bench_masks.py [N] [--rounds R] [--png]`` (default 3000 pairs, 3 rounds,
JPEG images; ``--png``: PNG images).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import tracemalloc
from pathlib import Path

SIZE = 512


def generate(root: Path, n: int, image_format: str = "JPEG") -> None:
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    pairs = []
    for k in range(16):
        img = np.clip(rng.normal(128, 30, (SIZE, SIZE, 3)) + np.linspace(0, 60, SIZE)[None, :, None], 0, 255)
        mask = np.zeros((SIZE, SIZE), np.uint8)
        for _ in range(1 + k % 2):
            y, x, r = rng.integers(60, SIZE - 60, 2).tolist() + [int(rng.integers(20, 60))]
            yy, xx = np.ogrid[:SIZE, :SIZE]
            mask[(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = 255
        jb, mb = io.BytesIO(), io.BytesIO()
        Image.fromarray(img.astype(np.uint8)).save(jb, format=image_format, **({"quality": 85} if image_format == "JPEG" else {}))
        Image.fromarray(mask).save(mb, format="PNG")
        pairs.append((jb.getvalue(), mb.getvalue()))
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    suffix = "jpg" if image_format == "JPEG" else "png"
    for k in range(n):
        image, mask = root / "images" / f"{k:05d}.{suffix}", root / "masks" / f"{k:05d}.png"
        if k < len(pairs):
            image.write_bytes(pairs[k][0])
            mask.write_bytes(pairs[k][1])
        else:  # hard links to the first 16: the folder costs no disk, every file is still opened
            os.link(root / "images" / f"{k % len(pairs):05d}.{suffix}", image)
            os.link(root / "masks" / f"{k % len(pairs):05d}.png", mask)


def plain_pil(root: Path) -> int:
    """The anchor: the plain loop a user writes over the pairs, each image and mask opened
    and loaded (the image into RGB, the mask into numpy)."""
    import numpy as np
    from PIL import Image

    pixels = 0
    for img in sorted((root / "images").iterdir()):
        with Image.open(img) as im:
            pixels += len(im.convert("RGB").getbands())
        with Image.open(root / "masks" / (img.stem + ".png")) as m:
            pixels += np.asarray(m).size
    return pixels


def least_work(root: Path) -> int:
    """The least any reader of the folder must do: each image's header (its size), each mask
    decoded into numpy (the image's pixels are not needed to read the annotations)."""
    import numpy as np
    from PIL import Image

    pixels = 0
    for img in sorted((root / "images").iterdir()):
        with Image.open(img) as im:
            pixels += im.size[0] * 0
        with Image.open(root / "masks" / (img.stem + ".png")) as m:
            pixels += np.asarray(m).size
    return pixels


def _peak(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--png", action="store_true", help="PNG images (medical sets often ship them) instead of JPEG")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_read import _timed  # best and median process CPU time of R rounds, after a warm one

    from zoo.data.reading import read_dataset

    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big", Path(tmp) / "small"
        fmt = "PNG" if args.png else "JPEG"
        generate(big, args.n, fmt)
        generate(small, args.n // 3, fmt)
        assert len(read_dataset(big, "masks").images) == args.n
        anchor = _timed(lambda: plain_pil(big), args.rounds)
        steps = {"plain PIL loop (anchor)": anchor,
                 "least work (headers + masks)": _timed(lambda: least_work(big), args.rounds),
                 "read_dataset(--from masks)": _timed(lambda: read_dataset(big, "masks"), args.rounds),
                 "read_dataset(detected)": _timed(lambda: read_dataset(big), args.rounds)}
        print(f"{args.n} pairs {SIZE}x{SIZE}, {fmt} images, {args.rounds} rounds, process CPU seconds")
        print(f"{'step':32} {'best':>8} {'median':>8} {'x anchor':>9}")
        for name, (best, med) in steps.items():
            print(f"{name:32} {best:8.2f} {med:8.2f} {best / anchor[0]:9.2f}")
        for label, folder, n in (("N/3", small, args.n // 3), ("N", big, args.n)):
            print(f"peak traced memory reading {label} = {n} pairs: {_peak(lambda: read_dataset(folder, 'masks')):.1f} MiB")


if __name__ == "__main__":
    main()
