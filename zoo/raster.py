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

    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
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
    n = len(poly)
    if n < 6:
        return 0.0
    xs, ys = poly[0::2], poly[1::2]
    s = xs[-1] * ys[0] - xs[0] * ys[-1]
    for i in range(len(xs) - 1):
        s += xs[i] * ys[i + 1] - xs[i + 1] * ys[i]
    return abs(s) / 2.0
