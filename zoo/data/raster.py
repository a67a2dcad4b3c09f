"""The one rasteriser: instances to pixel masks and label maps, and COCO RLE in and out.

Every mask in zoo (semantic label maps for training and scoring, COCO ``segm`` areas, mask
PNGs written by ``zoo convert``) comes from here, so a polygon covers the same pixels
everywhere.

Pixel rules (those of labelme's own ``shape_to_mask``, so masks match what labelme's
``labelme2voc.py`` writes pixel for pixel):

* a polygon is filled with PIL ``ImageDraw.polygon(fill=1, outline=1)``: its outline pixels
  count, so a polygon covers slightly more than its geometric area;
* a box-only instance (a labelme rectangle, a VOC / YOLO box) is filled with PIL
  ``ImageDraw.rectangle`` including both end pixels;
* an instance with an RLE ``mask`` uses that mask as is;
* several polygons of one instance (labelme ``group_id``) are OR-ed together.

A semantic label map paints instances in their order in the record, later ones over earlier
ones (labelme2voc's order); background is 0, category ``i`` is ``i + 1``, ignored regions
are 255.

numpy and PIL only at module level; pycocotools is imported inside the RLE functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from zoo.dataset import Dataset, ImageRecord, Instance

IGNORE = 255


def polygons_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """``(height, width)`` bool mask of flat polygons ``[x0, y0, x1, y1, ...]``, OR-ed."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    for poly in polygons:
        if len(poly) >= 6:
            draw.polygon(list(zip(poly[0::2], poly[1::2])), fill=1, outline=1)
        elif len(poly) >= 4:  # degenerate (2 points): a line, as PIL would draw it
            draw.line(list(zip(poly[0::2], poly[1::2])), fill=1)
    return np.asarray(img, dtype=bool)


def box_mask(box, height: int, width: int) -> np.ndarray:
    """``(height, width)`` bool mask of an xyxy box, both end pixels included (labelme's rule)."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (width, height), 0)
    x0, y0, x1, y1 = box
    ImageDraw.Draw(img).rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=1, outline=1)
    return np.asarray(img, dtype=bool)


def instance_mask(inst: Instance, height: int, width: int) -> np.ndarray:
    """The pixels one instance covers, as a ``(height, width)`` bool array."""
    if inst.mask is not None:
        m = rle_to_mask(inst.mask)
        if m.shape != (height, width):
            raise ValueError(f"mask of size {m.shape} on a {height}x{width} image")
        return m
    if inst.polygons:
        return polygons_mask(inst.polygons, height, width)
    return box_mask(inst.bbox, height, width)


def semantic_label_map(record: ImageRecord, dataset: Dataset | None = None) -> np.ndarray:
    """``(H, W)`` uint8 label map: background 0, category ``i`` at ``i + 1``, ignore 255."""
    if dataset is not None and len(dataset.categories) > 254:
        raise ValueError("a uint8 label map holds at most 254 categories (255 is 'ignore')")
    out = np.zeros((record.height, record.width), dtype=np.uint8)
    for inst in record.instances:
        m = instance_mask(inst, record.height, record.width)
        out[m] = IGNORE if inst.ignore or inst.category < 0 else inst.category + 1
    return out


def pixel_geometry(inst: Instance, height: int, width: int) -> tuple[float, list[float]]:
    """(area, [x, y, w, h]) of the pixels an instance covers, as pycocotools would compute them
    from its mask (labelme's labelme2coco convention). Rasterised in a crop around the
    instance, so it costs the instance's size, not the image's."""
    if inst.mask is not None:
        m = rle_to_mask(inst.mask)
        return _mask_area_bbox(m, 0, 0)
    x0, y0, x1, y1 = inst.bbox
    # crop with a 2-pixel margin (PIL outlines reach the rounded end pixel); integer offsets
    # keep the rasterisation identical to the full-image one
    ox = max(0, int(np.floor(x0)) - 2)
    oy = max(0, int(np.floor(y0)) - 2)
    ex = min(width, int(np.ceil(x1)) + 3)
    ey = min(height, int(np.ceil(y1)) + 3)
    if ex <= ox or ey <= oy:
        return 0.0, [0.0, 0.0, 0.0, 0.0]
    if inst.polygons:
        shifted = [[v - (ox if i % 2 == 0 else oy) for i, v in enumerate(p)] for p in inst.polygons]
        m = polygons_mask(shifted, ey - oy, ex - ox)
    else:
        m = box_mask((x0 - ox, y0 - oy, x1 - ox, y1 - oy), ey - oy, ex - ox)
    return _mask_area_bbox(m, ox, oy)


def _mask_area_bbox(m: np.ndarray, ox: int, oy: int) -> tuple[float, list[float]]:
    area = float(m.sum())
    if area == 0:
        return 0.0, [0.0, 0.0, 0.0, 0.0]
    rows = np.flatnonzero(m.any(axis=1))
    cols = np.flatnonzero(m.any(axis=0))
    return area, [
        float(cols[0] + ox),
        float(rows[0] + oy),
        float(cols[-1] - cols[0] + 1),
        float(rows[-1] - rows[0] + 1),
    ]


def mask_to_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE ``{"size": [h, w], "counts": str}`` of a 2-D mask."""
    from pycocotools import mask as mask_utils

    # a bool mask is viewed as bytes (no copy); one already column-major is encoded as it is
    m = mask.view(np.uint8) if isinstance(mask, np.ndarray) and mask.dtype == bool else np.asarray(mask, dtype=np.uint8)
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def rle_to_mask(rle: dict) -> np.ndarray:
    """``(h, w)`` bool mask of a COCO RLE (compressed string/bytes or uncompressed list counts)."""
    from pycocotools import mask as mask_utils

    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    else:
        rle = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(rle).astype(bool)


def rle_counts(counts: str) -> list[int] | None:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``, in
    Python), or None when the string is not a well-formed encoding."""
    out: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x = k = 0
        more = True
        while more:
            if p >= n:
                return None  # the string ends inside a number
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def rle_problem(rle, height: int, width: int) -> str | None:
    """Why a COCO RLE read from a user's file cannot be used on a ``height x width`` image,
    or None. pycocotools trusts ``size`` and ``counts``: runs summing past the image write
    past its buffer (a segfault) and runs summing short give a wrong area, so both are
    checked here before anything is decoded."""
    size = rle.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                             for v in size)):
        return f"RLE size {size!r} is not [height, width]"
    if size != [height, width]:
        return f"RLE size {size} is not the image's [{height}, {width}]"
    counts = rle.get("counts")
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, str):
        runs = rle_counts(counts)
        if runs is None:
            return "RLE counts is not a valid compressed string"
    elif isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        runs = counts
    else:
        return "RLE counts is neither a string nor a list of integers"
    if any(v < 0 for v in runs):
        return "RLE counts holds a negative run"
    if sum(runs) != height * width:
        return f"RLE runs cover {sum(runs):,} pixels, not the image's {height * width:,}"
    return None


def rle_area(rle: dict) -> float:
    from pycocotools import mask as mask_utils

    counts = rle["counts"]
    r = {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    if isinstance(counts, list):
        r = mask_utils.frPyObjects(rle, *rle["size"])
    return float(mask_utils.area(r))


def rle_bbox(rle: dict) -> tuple[float, float, float, float]:
    """xyxy box of an RLE mask's pixels (covering whole pixels)."""
    m = rle_to_mask(rle)
    area, (x, y, w, h) = _mask_area_bbox(m, 0, 0)
    return (x, y, x + w, y + h)


def polygon_area(poly: list[float]) -> float:
    """Geometric (shoelace) area of a flat polygon (plain Python: polygons are short and
    numpy's per-call overhead dominated)."""
    if len(poly) < 6:
        return 0.0
    xs, ys = poly[0::2], poly[1::2]
    s = xs[-1] * ys[0] - xs[0] * ys[-1]  # the closing edge first, then the others in order
    for x, y, x1, y1 in zip(xs, ys, xs[1:], ys[1:]):
        s += x * y1 - x1 * y
    return abs(s) / 2.0


def rasterise_polygons_rles(items: list[tuple[list[list[float]], int, int]]) -> list[dict]:
    """``mask_to_rle(polygons_mask(polygons, height, width))`` for many ``(polygons, height,
    width)`` at once, pixel for pixel (tests/test_eval_fast_paths.py), several times faster.

    Per item only PIL draws (the same calls as :func:`polygons_mask`, on a canvas with the
    same origin, so the same pixels: PIL clips at the right and bottom edges without moving
    anything, while a shifted origin can move pixels through float rounding); the pixels
    around the shape are then scanned for runs a few thousand items at a time
    (:class:`_RunScanner`), and mapping runs to whole-image counts (:func:`_whole_image_runs`)
    and compressing them (:func:`_compressed_rles`) are done once for all items.
    """
    if not items:
        return []
    canvas = _PolygonCanvas()
    scanner = _RunScanner()
    # per item that draws: crop origin x0, y0 in the image, crop rows + 1 (a zero ends every column)
    origin: dict[int, tuple[int, int, int]] = {}
    for i, (polygons, height, width) in enumerate(items):
        drawn = [p for p in polygons if len(p) >= 4]
        crop = _crop_around(drawn, height, width) if drawn else None
        if crop is None:
            continue  # nothing to draw, or wholly right of or below the image: no pixels
        scanner.add(canvas.columns(drawn, height, width, crop), i)
        x0, y0, _, ch = crop
        origin[i] = x0, y0, ch - y0 + 1
    changes, owners = scanner.result()
    starts, ends, owners = _whole_image_runs(items, origin, changes, owners)
    return _compressed_rles(items, starts, ends, owners)


def _crop_around(drawn: list[list[float]], height: int, width: int) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` of the image holding every pixel the polygons paint, or None when
    they lie wholly right of or below the image. The pixels lie within 2 pixels of the
    shape's extent (PIL's outline reaches the rounded end pixel): from 2 before its left
    and top to 2 past its right and bottom."""
    import math

    if len(drawn) == 1:
        xs, ys = drawn[0][0::2], drawn[0][1::2]
        x_min, x_max, y_min, y_max = min(xs), max(xs), min(ys), max(ys)
    else:
        x_min = min(min(p[0::2]) for p in drawn)
        x_max = max(max(p[0::2]) for p in drawn)
        y_min = min(min(p[1::2]) for p in drawn)
        y_max = max(max(p[1::2]) for p in drawn)
    cw = min(width, max(1, math.ceil(x_max) + 3))
    ch = min(height, max(1, math.ceil(y_max) + 3))
    x0 = max(0, math.floor(x_min) - 2)
    y0 = max(0, math.floor(y_min) - 2)
    if x0 >= cw or y0 >= ch:
        return None
    return x0, y0, cw, ch


class _PolygonCanvas:
    """One whole-image canvas per image size, wiped after each shape (only where it drew):
    the same origin and right/bottom clipping as a canvas of its own."""

    def __init__(self):
        self.canvas = self.draw = self.size = None

    def columns(self, drawn: list[list[float]], height: int, width: int, crop: tuple[int, int, int, int]) -> bytes:
        """The pixels of ``crop`` after drawing the polygons, columns as rows (COCO RLE runs
        down columns), each column ended by one zero (a row the shape does not reach, or
        PIL's 0 padding past the edge)."""
        if self.size != (width, height):
            from PIL import Image, ImageDraw

            self.canvas = Image.new("L", (width, height), 0)
            self.draw = ImageDraw.Draw(self.canvas)
            self.size = (width, height)
        for poly in drawn:  # polygons_mask's rule: outline included, 2 points a line
            if len(poly) >= 6:  # (PIL takes the flat list as the same points)
                self.draw.polygon(poly, fill=1, outline=1)
            else:
                self.draw.line(poly, fill=1)
        x0, y0, cw, ch = crop
        rows = self.canvas.crop((x0, y0, cw, ch + 1)).tobytes()
        # transposed by numpy: the same bytes as PIL's transpose, a third of the time
        part = np.frombuffer(rows, np.uint8).reshape(ch + 1 - y0, cw - x0).T.tobytes()
        self.canvas.paste(0, (x0, y0, cw, ch))
        return part


class _RunScanner:
    """Where the value changes in many items' column bytes: each run is one (start, end)
    pair of changes. Every part ends with a zero, so a pair never straddles two parts;
    parts are scanned in chunks of ~2 MB, which keeps the scan in cache."""

    CHUNK = 1 << 21

    def __init__(self):
        self.found_at: list[np.ndarray] = []  # value changes: positions in each part ...
        self.found_in: list[np.ndarray] = []  # ... and the item they belong to
        self.parts: list[bytes] = []
        self.owners: list[int] = []
        self.buffered = 0

    def add(self, part: bytes, owner: int) -> None:
        self.parts.append(part)
        self.owners.append(owner)
        self.buffered += len(part)
        if self.buffered > self.CHUNK:
            self._scan()

    def _scan(self) -> None:
        sizes = np.array([len(c) for c in self.parts], np.int64)
        ends = np.cumsum(sizes)
        stream = np.frombuffer(b"\0" + b"".join(self.parts), np.uint8)  # a leading 0: a run may start at once
        t = np.flatnonzero(stream[1:] != stream[:-1])
        part = np.searchsorted(ends, t, side="right")
        self.found_at.append(t - (ends - sizes)[part])
        self.found_in.append(np.asarray(self.owners, np.int64)[part])
        self.parts.clear()
        self.owners.clear()
        self.buffered = 0

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions of the changes in their item's bytes, their items)."""
        if self.parts:
            self._scan()
        empty = np.zeros(0, np.int64)
        return (np.concatenate(self.found_at) if self.found_at else empty,
                np.concatenate(self.found_in) if self.found_in else empty)


def _whole_image_runs(items, origin: dict, t: np.ndarray, item: np.ndarray):
    """(starts, ends, items) of every run as column-major positions in its whole image, a run
    down to a column's bottom edge that goes on at the next column's top joined into one."""
    geo = np.zeros((len(items), 4), np.int64)  # crop origin and rows + 1, then image height
    if origin:
        geo[list(origin), :3] = list(origin.values())
    geo[:, 3] = [h for _, h, _ in items]
    q, r = np.divmod(t, np.maximum(geo[item, 2], 1))
    pos = (q + geo[item, 0]) * geo[item, 3] + (r + geo[item, 1])
    starts, ends, item = pos[0::2], pos[1::2], item[0::2]
    joined = np.zeros(len(starts), bool)
    joined[1:] = (starts[1:] == ends[:-1]) & (item[1:] == item[:-1])
    keep_end = np.ones(len(ends), bool)
    keep_end[:-1] = ~joined[1:]
    return starts[~joined], ends[keep_end], item[~joined]


def _compressed_rles(items, starts: np.ndarray, ends: np.ndarray, item: np.ndarray) -> list[dict]:
    """Each item's runs as a compressed COCO RLE. Counts (zeros, ones, zeros, ..., zeros) are
    the differences of 0, s1, e1, ..., sm, em, N: computed for all items at once."""
    from pycocotools import mask as mask_utils

    pixels = np.array([h * w for _, h, w in items], np.int64)
    runs = np.bincount(item, minlength=len(items))
    first = np.cumsum(runs) - runs  # every item's first run
    edges = np.empty(2 * len(starts), np.int64)
    edges[0::2], edges[1::2] = starts, ends
    edges = np.insert(edges, 2 * first, 0)
    edges = np.insert(edges, 2 * (first + runs) + np.arange(len(items)) + 1, pixels)
    counts = np.diff(edges)  # the difference between one item's N and the next one's 0 is skipped
    begin = 2 * (first + np.arange(len(items)))
    objs = []
    for i, (_, height, width) in enumerate(items):
        c = counts[begin[i]:begin[i] + 2 * runs[i] + 1]
        if len(c) > 1 and c[-1] == 0:  # the mask reaches the last pixel: no trailing zeros
            c = c[:-1]
        objs.append({"size": [height, width], "counts": c.tolist()})
    return [{"size": o["size"], "counts": r["counts"].decode("ascii")}
            for o, r in zip(objs, mask_utils.frPyObjects(objs, 0, 0))]


def rle_areas(rles: list[dict]) -> list[float]:
    """:func:`rle_area` of many RLEs in one pycocotools call."""
    from pycocotools import mask as mask_utils

    if not rles:
        return []
    objs = []
    for rle in rles:
        counts = rle["counts"]
        if isinstance(counts, list):
            objs.append(mask_utils.frPyObjects(rle, *rle["size"]))
        else:
            objs.append({"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts})
    # pycocotools 2.0.11 sizes its internal count array as uint8 (OverflowError from 256
    # RLEs on, under numpy 2), hence chunks of 255
    return [float(a) for k in range(0, len(objs), 255) for a in mask_utils.area(objs[k:k + 255])]
