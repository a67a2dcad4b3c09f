"""From raw network outputs to scored detections with masks (YOLACT section 3.5 and the
YOLACT++ re-scoring of section 6.2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from zoo.plugins.yolact.boxes import decode
from zoo.plugins.yolact.masks import assemble, crop
from zoo.plugins.yolact.nms import NMS


@dataclass
class InferenceSettings:
    nms: str = "fast"
    nms_iou: float = 0.5
    top_k: int = 200  # candidates per class entering NMS (the paper's 200)
    score_threshold: float = 0.05
    max_detections: int = 100


@dataclass
class ImageDetections:
    """One image's detections: normalised xyxy boxes, classes, scores, and the masks at
    prototype resolution, uncropped (the caller crops at the resolution it outputs)."""

    boxes: torch.Tensor
    classes: torch.Tensor
    scores: torch.Tensor
    masks: torch.Tensor


def detect(out: dict, b: int, anchors, s: InferenceSettings, maskiou_net=None) -> ImageDetections:
    """Image ``b`` of a batch: softmax confidences, decoded boxes, NMS per class, the best
    ``max_detections``, masks ``sigma(P C^T)``; with a re-scoring net, each score times the
    predicted IoU of its (cropped) mask for its class."""
    probs = out["conf"][b].softmax(-1)[:, 1:]  # background is class 0
    boxes = decode(out["loc"][b], anchors)
    cand = probs.max(1).values > s.score_threshold
    boxes, probs, coef = boxes[cand], probs[cand], out["coef"][b][cand]
    idx, classes, scores = NMS[s.nms](boxes, probs.t(), s.nms_iou, s.top_k, s.score_threshold)
    order = scores.argsort(descending=True)[: s.max_detections]
    idx, classes, scores = idx[order], classes[order], scores[order]
    boxes = boxes[idx].clamp(0.0, 1.0)
    masks = assemble(out["proto"][b], coef[idx])
    if maskiou_net is not None and len(idx):
        iou = maskiou_net(crop(masks, boxes))[torch.arange(len(idx), device=masks.device), classes]
        scores = scores * iou.clamp(0.0, 1.0)
        order = scores.argsort(descending=True)
        boxes, classes, scores, masks = boxes[order], classes[order], scores[order], masks[order]
    return ImageDetections(boxes, classes, scores, masks)
