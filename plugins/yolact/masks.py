"""Mask assembly (YOLACT section 3.3): a linear combination of prototypes, then a sigmoid,
cropped by a box."""

from __future__ import annotations


def assemble(prototypes, coefficients):
    """Equation 1 of the paper, ``M = sigma(P C^T)``: prototypes ``P`` ``(h, w, k)`` and
    coefficients ``C`` ``(n, k)`` -> ``n`` masks ``(n, h, w)`` in ``(0, 1)``."""
    import torch

    return torch.sigmoid(prototypes @ coefficients.t()).permute(2, 0, 1)


def crop(masks, boxes):
    """Zero each mask ``(n, h, w)`` outside its box ``(n, 4)`` (normalised xyxy): a pixel is
    inside when its centre is. Works at any resolution, since boxes are normalised."""
    import torch

    n, h, w = masks.shape
    xs = (torch.arange(w, device=masks.device, dtype=masks.dtype) + 0.5) / w
    ys = (torch.arange(h, device=masks.device, dtype=masks.dtype) + 0.5) / h
    boxes = boxes.to(masks.dtype)
    inside_x = (xs[None] >= boxes[:, 0:1]) & (xs[None] <= boxes[:, 2:3])  # (n, w)
    inside_y = (ys[None] >= boxes[:, 1:2]) & (ys[None] <= boxes[:, 3:4])  # (n, h)
    return masks * (inside_y[:, :, None] & inside_x[:, None, :]).to(masks.dtype)
