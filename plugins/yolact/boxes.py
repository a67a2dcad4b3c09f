"""Anchors and box coordinates (YOLACT section 3.4, following SSD).

Boxes are normalised to the network input (``[0, 1]`` on both axes): the image is resized to
``imgsz x imgsz`` as in the paper (550 x 550), so one anchor set serves every image.
Anchors are ``(cx, cy, w, h)``; boxes elsewhere are ``(x0, y0, x1, y1)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: The paper's setting: P3..P7 anchors of 24, 48, 96, 192, 384 px on 550-px images.
PAPER_IMGSZ = 550
PAPER_SIZES = (24.0, 48.0, 96.0, 192.0, 384.0)
ASPECT_RATIOS = (1.0, 0.5, 2.0)
#: YOLACT++ (section 6.3): three scales per level instead of one.
PLUS_SCALES = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
#: SSD's variances: offsets are predicted in units of 0.1 anchor, log sizes in units of 0.2.
VARIANCES = (0.1, 0.2)


def scaled_sizes(imgsz: int, object_sides: Sequence[float] = ()) -> list[float]:
    """The paper's anchor sizes for ``imgsz`` (scaled from 550 px), then shrunk (at most 2x)
    when the data's small objects are smaller still, so that they meet an anchor they can
    match (IoU >= 0.5 needs an anchor within ~1.4x of the object's side).

    ``object_sides``: ``sqrt(w * h)`` of the training objects in network pixels.
    """
    sizes = [s * imgsz / PAPER_IMGSZ for s in PAPER_SIZES]
    if object_sides:
        ordered = sorted(object_sides)
        small = ordered[int(0.05 * (len(ordered) - 1))]  # 5th percentile: ignore a few specks
        if small < sizes[0]:
            f = max(small / sizes[0], 0.5)
            sizes = [s * f for s in sizes]
    return [round(s, 3) for s in sizes]


def level_shapes(sizes: Sequence[float], scales: Sequence[float], ratios: Sequence[float]) -> list[list[tuple[float, float]]]:
    """Per level, the ``(w, h)`` of each anchor at one location, in pixels: size x scale,
    with ``w / h = ratio`` at the same area (``w = s * sqrt(r)``, ``h = s / sqrt(r)``)."""
    return [
        [(s * c * math.sqrt(r), s * c / math.sqrt(r)) for c in scales for r in ratios]
        for s in sizes
    ]


def make_anchors(grids: Sequence[tuple[int, int]], shapes: Sequence[Sequence[tuple[float, float]]], imgsz: int, device=None):
    """All anchors ``(N, 4)`` as normalised ``(cx, cy, w, h)``, in the order the prediction
    head flattens its output: level, row, column, anchor."""
    import torch

    out = []
    for (gh, gw), wh in zip(grids, shapes):
        ys = (torch.arange(gh, dtype=torch.float32, device=device) + 0.5) / gh
        xs = (torch.arange(gw, dtype=torch.float32, device=device) + 0.5) / gw
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        size = torch.tensor(wh, dtype=torch.float32, device=device) / imgsz  # (A, 2)
        a = len(wh)
        centres = torch.stack([cx, cy], -1).reshape(-1, 1, 2).expand(-1, a, 2)
        out.append(torch.cat([centres, size.expand(gh * gw, a, 2)], -1).reshape(-1, 4))
    return torch.cat(out)


def to_corners(cxcywh):
    """``(cx, cy, w, h)`` -> ``(x0, y0, x1, y1)``."""
    import torch

    centre, size = cxcywh[..., :2], cxcywh[..., 2:]
    return torch.cat([centre - size / 2, centre + size / 2], -1)


def encode(boxes, anchors):
    """Ground-truth ``(x0, y0, x1, y1)`` -> the regression target against ``anchors`` (SSD):
    ``((cx - a_cx) / (v0 a_w), (cy - a_cy) / (v0 a_h), log(w / a_w) / v1, log(h / a_h) / v1)``."""
    import torch

    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-6)
    d_centre = (centre - anchors[:, :2]) / (VARIANCES[0] * anchors[:, 2:])
    d_size = torch.log(size / anchors[:, 2:]) / VARIANCES[1]
    return torch.cat([d_centre, d_size], 1)


def decode(offsets, anchors):
    """Inverse of :func:`encode`: predicted offsets -> ``(x0, y0, x1, y1)``."""
    import torch

    centre = anchors[:, :2] + offsets[:, :2] * VARIANCES[0] * anchors[:, 2:]
    size = anchors[:, 2:] * torch.exp((offsets[:, 2:] * VARIANCES[1]).clamp(max=10.0))
    return torch.cat([centre - size / 2, centre + size / 2], 1)


def coverage(anchors_xyxy, regions_xyxy):
    """``(A, R)``: the fraction of each anchor's area inside each region (for ignored
    regions, where an anchor that lies mostly inside is neither object nor background)."""
    import torch

    lt = torch.max(anchors_xyxy[:, None, :2], regions_xyxy[None, :, :2])
    rb = torch.min(anchors_xyxy[:, None, 2:], regions_xyxy[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = (anchors_xyxy[:, 2:] - anchors_xyxy[:, :2]).clamp(min=0).prod(-1)
    return inter / area[:, None].clamp(min=1e-12)
