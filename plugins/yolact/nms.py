"""Fast NMS (YOLACT section 3.5) and the standard NMS it replaces, with one signature.

Both take every candidate's box and its score for each class, keep the ``top_k`` best of
each class, and return the survivors as ``(index, class, score)``.
"""

from __future__ import annotations


def fast_nms(boxes, scores, iou_threshold: float = 0.5, top_k: int = 200, score_threshold: float = 0.05):
    """Fast NMS, as the paper defines it.

    boxes ``(n, 4)`` xyxy; scores ``(C, n)``. Per class, the ``top_k`` detections sorted by
    score give a ``(C, k, k)`` IoU matrix X; its lower triangle and diagonal are zeroed
    (``X_kij = 0 if i >= j``: a box is only suppressed by higher-scoring ones), and
    ``K_kj = max_i X_kij`` (the max over each column) is each box's largest overlap with a
    better box of its class. A box is kept when ``K <= iou_threshold``. Unlike standard
    NMS, a box that is itself suppressed still suppresses others: one matrix operation
    instead of a sequential loop, which removes slightly more boxes.

    Returns ``(indices into boxes, classes, scores)`` of the kept detections.
    """
    import torch

    n_cls, n = scores.shape
    k = min(top_k, n)
    top, order = scores.sort(1, descending=True)
    top, order = top[:, :k], order[:, :k]
    iou = batched_iou(boxes[order])  # (C, k, k), all classes in one operation
    iou_max = iou.triu(diagonal=1).max(dim=1).values if k else top  # K_j = max_i X_ij
    keep = (iou_max <= iou_threshold) & (top > score_threshold)
    classes = torch.arange(n_cls, device=scores.device)[:, None].expand_as(keep)
    return order[keep], classes[keep], top[keep]


def batched_iou(boxes):
    """``(C, k, 4)`` xyxy -> ``(C, k, k)``: the IoU of every pair of boxes within each row."""
    import torch

    area = (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    lt = torch.max(boxes[:, :, None, :2], boxes[:, None, :, :2])
    rb = torch.min(boxes[:, :, None, 2:], boxes[:, None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / (area[:, :, None] + area[:, None, :] - inter).clamp(min=1e-12)


def standard_nms(boxes, scores, iou_threshold: float = 0.5, top_k: int = 200, score_threshold: float = 0.05):
    """Standard (sequential, per class) NMS on the same candidates as :func:`fast_nms`:
    torchvision's ``batched_nms``, where only kept boxes suppress."""
    import torch
    from torchvision.ops import batched_nms

    n_cls, n = scores.shape
    k = min(top_k, n)
    top, order = scores.sort(1, descending=True)
    top, order = top[:, :k].reshape(-1), order[:, :k].reshape(-1)
    classes = torch.arange(n_cls, device=scores.device).repeat_interleave(k)
    ok = top > score_threshold
    top, order, classes = top[ok], order[ok], classes[ok]
    kept = batched_nms(boxes[order], top, classes, iou_threshold)
    return order[kept], classes[kept], top[kept]


NMS = {"fast": fast_nms, "standard": standard_nms}
