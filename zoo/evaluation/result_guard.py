"""The gate a predictions file passes before any C code sees it (pycocotools, orjson, PIL).

A results file comes from anywhere: another tool, a script, a hostile hand. pycocotools'
C code trusts what it is given: a polygon point at 1e12 makes ``frPyObjects`` walk (and
allocate for) every pixel of its edge, a compressed RLE string that ends mid-number is read
past its end, a count of 2**32 wraps. So each value is checked in Python first, against the
image it claims to describe:

* the file itself: at most :func:`max_results_bytes` (``ZOO_MAX_RESULTS_MB``), so the JSON
  parser's memory stays bounded (about 10x the file);
* numbers: finite, a number (not a string, a list or a bool);
* every coordinate (box corner, polygon point, keypoint) within :data:`MARGIN` image sizes
  of the image: x in ``[-MARGIN*W, (1+MARGIN)*W]``, y likewise with H;
* an RLE: ``size`` equal to the image's ``[H, W]``; ``counts`` a list of non-negative
  integers below 2**32, or pycocotools' compressed string (its alphabet only, ending on a
  whole number); either way the runs sum to ``H*W``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

#: How far outside its image a coordinate may lie, in image sizes (a box half off the image
#: is a prediction; one a million pixels away is a broken file).
MARGIN = 1.0
#: The default size cap of a predictions file, in MB (``ZOO_MAX_RESULTS_MB`` changes it).
DEFAULT_MAX_RESULTS_MB = 64


def max_results_bytes() -> int:
    raw = os.environ.get("ZOO_MAX_RESULTS_MB", "")
    try:
        mb = float(raw) if raw.strip() else DEFAULT_MAX_RESULTS_MB
    except ValueError:
        raise ZooError(f"ZOO_MAX_RESULTS_MB={raw!r}: not a number of megabytes") from None
    return int(mb * 2**20)


def read_capped(path: Path) -> bytes:
    """The bytes of a predictions file no larger than :func:`max_results_bytes`."""
    size = path.stat().st_size
    cap = max_results_bytes()
    if size > cap:
        raise ZooError(f"{path}: {size / 2**20:.0f} MB, more than zoo reads as a predictions file "
                       f"({cap / 2**20:.0f} MB); set ZOO_MAX_RESULTS_MB to raise the limit")
    return path.read_bytes()


def number(value: Any, where: str, what: str) -> float:
    """``value`` as a finite float; a ZooError naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ZooError(f"{where}: {what} is {_show(value)}, not a number")
    v = float(value) if not isinstance(value, int) or abs(value) < 2**63 else math.inf
    if not math.isfinite(v):
        raise ZooError(f"{where}: {what} is {_show(value)}, not a finite number")
    return v


def integer(value: Any, where: str, what: str) -> int:
    """An integer id (an integral float such as 3.0 is taken, as JSON writers produce it)."""
    v = number(value, where, what)
    if v != int(v):
        raise ZooError(f"{where}: {what} is {_show(value)}, not a whole number")
    return int(v)


class ImageBounds:
    """Where the coordinates of one image's predictions may lie."""

    def __init__(self, width: int, height: int, where: str):
        self.width, self.height, self.where = int(width), int(height), where
        self.x = (-MARGIN * self.width, (1 + MARGIN) * self.width)
        self.y = (-MARGIN * self.height, (1 + MARGIN) * self.height)

    def _outside(self, what: str, x: float, y: float) -> ZooError:
        return ZooError(f"{self.where}: {what} ({x:g}, {y:g}) lies far outside the {self.width}x{self.height} "
                        f"image (zoo takes coordinates within {MARGIN:g} image size of its edges)")

    def point(self, x: Any, y: Any, what: str) -> tuple[float, float]:
        fx, fy = number(x, self.where, f"{what} x"), number(y, self.where, f"{what} y")
        if not (self.x[0] <= fx <= self.x[1] and self.y[0] <= fy <= self.y[1]):
            raise self._outside(what, fx, fy)
        return fx, fy

    def box(self, bbox: Any) -> tuple[float, float, float, float]:
        """``[x, y, w, h]``, both corners within bounds."""
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise ZooError(f"{self.where}: bbox must be [x, y, w, h], got {_show(bbox)}")
        x, y = self.point(bbox[0], bbox[1], "bbox corner")
        w, h = number(bbox[2], self.where, "bbox width"), number(bbox[3], self.where, "bbox height")
        self.point(x + w, y + h, "bbox corner")
        return x, y, w, h

    def polygons(self, seg: list) -> list[list[float]]:
        """COCO polygons ``[[x0, y0, x1, y1, ...], ...]``, every point within bounds."""
        out = []
        for k, poly in enumerate(seg):
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                raise ZooError(f"{self.where}: polygon {k} must be a list of at least 3 (x, y) points, "
                               f"got {_show(poly)}")
            flat = []
            for i in range(0, len(poly), 2):
                flat += self.point(poly[i], poly[i + 1], f"polygon {k} point {i // 2}")
            out.append(flat)
        return out

    def rle(self, seg: dict) -> dict:
        """An RLE of this image's size whose runs cover it exactly, as pycocotools' compressed
        form (``counts`` a str)."""
        size = seg.get("size")
        if (not isinstance(size, list) or len(size) != 2
                or [integer(v, self.where, "RLE size") for v in size] != [self.height, self.width]):
            raise ZooError(f"{self.where}: RLE size {_show(size)} is not the image's [height, width] "
                           f"[{self.height}, {self.width}]")
        counts = seg.get("counts")
        if isinstance(counts, bytes):
            counts = counts.decode("latin-1")
        if isinstance(counts, str):
            runs = compressed_runs(counts, self.where)
        elif isinstance(counts, list):
            runs = [integer(v, self.where, "RLE count") for v in counts]
            if any(v < 0 or v >= 2**32 for v in runs):
                raise ZooError(f"{self.where}: RLE counts must lie in [0, 2**32)")
        else:
            raise ZooError(f"{self.where}: RLE counts is {_show(counts)}, not a string or a list of integers")
        total = sum(runs)
        if total != self.height * self.width:
            raise ZooError(f"{self.where}: RLE runs cover {total} pixels, the {self.width}x{self.height} "
                           f"image has {self.height * self.width}")
        if isinstance(counts, str):
            return {"size": [self.height, self.width], "counts": counts}
        from pycocotools import mask as mask_utils

        rle = mask_utils.frPyObjects({"size": [self.height, self.width], "counts": runs}, self.height, self.width)
        return {"size": [self.height, self.width], "counts": rle["counts"].decode("ascii")}

    def keypoints(self, kps: Any, count: int) -> list[tuple[float, float, float]]:
        """A flat ``[x, y, score, ...]`` of ``count`` points (any multiple of 3 when 0)."""
        if not isinstance(kps, list) or len(kps) % 3 or (count and len(kps) != 3 * count):
            n = len(kps) if isinstance(kps, list) else _show(kps)
            raise ZooError(f"{self.where}: {n} keypoint values, expected {3 * count} (x, y, score each)")
        out = []
        for i in range(0, len(kps), 3):
            score = number(kps[i + 2], self.where, f"keypoint {i // 3} score")
            if score == 0 and kps[i] == 0 and kps[i + 1] == 0:
                out.append((0.0, 0.0, 0.0))  # COCO's "not predicted"
                continue
            out.append((*self.point(kps[i], kps[i + 1], f"keypoint {i // 3}"), score))
        return out


def compressed_runs(counts: str, where: str) -> list[int]:
    """The runs of pycocotools' compressed RLE string (``rleFrString``, decoded here with
    numpy so that a malformed string never reaches the C decoder): 6-bit groups from
    ``'0'`` (48), 5 value bits and a continuation bit each, the last group's 0x10 bit the
    sign."""
    import numpy as np

    raw = np.frombuffer(counts.encode("utf-8", "replace"), dtype=np.uint8)
    if raw.size == 0:
        return []
    c = raw.astype(np.int64) - 48
    if c.min() < 0 or c.max() > 63:
        raise ZooError(f"{where}: RLE counts string holds characters outside pycocotools' alphabet ('0'..'o')")
    more = (c & 0x20) != 0
    if more[-1]:
        raise ZooError(f"{where}: RLE counts string ends in the middle of a number")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    if int((ends - starts).max()) >= 7:  # pycocotools shifts in a C int: 7 groups at most
        raise ZooError(f"{where}: RLE counts string holds a number too large for an image")
    group = np.repeat(np.arange(ends.size), ends - starts + 1)
    shift = 5 * (np.arange(c.size) - starts[group])
    values = np.zeros(ends.size, dtype=np.int64)
    np.add.at(values, group, (c & 0x1F) << shift)
    negative = (c[ends] & 0x10) != 0
    values[negative] |= -(np.int64(1) << (5 * (ends - starts + 1))[negative])
    # rleFrString: from the fourth run on, each is stored as the difference to the one two before
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    if runs.min() < 0 or runs.max() >= 2**31:
        raise ZooError(f"{where}: RLE counts string decodes to a run outside [0, 2**31)")
    return runs.tolist()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
