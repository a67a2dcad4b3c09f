"""Mask assembly (YOLACT section 3.3): a linear combination of prototypes, then a sigmoid,
cropped by a box."""

from __future__ import annotations


def assemble(prototypes, coefficients):
    """Equation 1 of the paper, ``M = sigma(P C^T)``: prototypes ``P`` ``(h, w, k)`` and
    coefficients ``C`` ``(n, k)`` -> ``n`` masks ``(n, h, w)`` in ``(0, 1)``."""
    import torch

    return torch.sigmoid(prototypes @ coefficients.t()).permute(2, 0, 1)


def crop(masks, boxes):
    """Zero each mask ``(n, h, w)`` outside its box ``(n, 4)`` (normalised xyxy). A pixel
    stays when it overlaps the box at all: a box drawn through a pixel of the object (boxes
    are unrounded) must not cut that pixel off, as the authors' one-pixel padding ensures.
    Works at any resolution, since boxes are normalised."""
    import torch

    n, h, w = masks.shape
    xs = torch.arange(w, device=masks.device, dtype=masks.dtype)
    ys = torch.arange(h, device=masks.device, dtype=masks.dtype)
    boxes = boxes.to(masks.dtype)
    # pixel j spans [j, j + 1) / w: it overlaps [x0, x1] when (j + 1) / w > x0 and j / w < x1
    inside_x = ((xs[None] + 1) / w > boxes[:, 0:1]) & (xs[None] / w < boxes[:, 2:3])  # (n, w)
    inside_y = ((ys[None] + 1) / h > boxes[:, 1:2]) & (ys[None] / h < boxes[:, 3:4])  # (n, h)
    return masks * (inside_y[:, :, None] & inside_x[:, None, :]).to(masks.dtype)
