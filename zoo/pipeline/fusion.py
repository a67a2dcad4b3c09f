"""Fusing K models' instances into the ensemble's (detect, instance-seg, keypoint).

Boxes: weighted boxes fusion (Solovyev et al. 2021) as ``ensemble-boxes`` implements it
(``weighted_boxes_fusion``, one call per image, boxes normalised to the image; same-category
boxes overlapping by IoU > :data:`IOU_THR` form a cluster whose box is the score-weighted
mean; ``conf_type="avg"``: the cluster's score is its mean score times min(K, cluster size)
/ K, so a box only some models found scores lower). ``ensemble-boxes`` returns the fused boxes
only, so each model's detection is then assigned to the fused box of its category it
overlaps most (IoU >= :data:`IOU_THR`): the fused box's *members*.

* instance-seg: the fused mask is the mean of the members' masks, kept where >= 0.5;
* keypoint: each keypoint is the mean ``(x, y, score)`` of the members' keypoints.

As in WBF itself, two boxes of one category from the *same* model that overlap by more than
:data:`IOU_THR` fuse too: K identical models give the single model's detections back where
its same-category boxes overlap less than that (to float32, in which ensemble-boxes computes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from zoo.data.raster import mask_to_rle, rle_to_mask
from zoo.dataset import Dataset, ImageRecord
from zoo.errors import MissingDependency
from zoo.predictions import Detection, InstancePredictions

#: WBF's cluster threshold (ensemble-boxes' default) and the member assignment's
IOU_THR = 0.55
MASK_THRESHOLD = 0.5

_WBF = (f"ensemble of K: weighted boxes fusion of the K models' boxes (ensemble-boxes' weighted_boxes_fusion, "
        f"iou_thr {IOU_THR}, conf_type 'avg': a fused box scores its members' mean times min(K, members) / K)")
RULES = {
    "detect": _WBF,
    "instance-seg": _WBF + f"; its mask the mean of its members' masks (each model's detection a member of the "
                           f"fused box of its category it overlaps most, IoU >= {IOU_THR}), kept where >= "
                           f"{MASK_THRESHOLD}",
    "keypoint": _WBF + f"; its keypoints the mean (x, y, score) of its members' keypoints (each model's detection "
                       f"a member of the fused box of its category it overlaps most, IoU >= {IOU_THR})",
}


def fuse_instances(members: Sequence, images: list[ImageRecord], meta: Dataset) -> Iterator[InstancePredictions]:
    per_model = [list(m.predict(images)) for m in members]
    for i, record in enumerate(images):
        yield fuse_image(record, [preds[i] for preds in per_model])


def fuse_image(record: ImageRecord, preds: Sequence[InstancePredictions]) -> InstancePredictions:
    """The K models' detections of one image fused (module doc)."""
    try:
        from ensemble_boxes import weighted_boxes_fusion
    except ImportError:
        raise MissingDependency("fusing detections needs ensemble-boxes: pip install 'zoo[export]'") from None
    import numpy as np

    w, h = float(record.width), float(record.height)
    scale = np.array([w, h, w, h])
    boxes, scores, labels = [], [], []
    for p in preds:
        b = np.array([d.bbox for d in p.detections], np.float64).reshape(-1, 4)
        boxes.append(np.clip(b / scale, 0.0, 1.0))
        scores.append([d.score for d in p.detections])
        labels.append([d.category for d in p.detections])
    if not any(len(s) for s in scores):
        return InstancePredictions(image_id=record.id)
    fused, fused_scores, fused_labels = weighted_boxes_fusion(boxes, scores, labels, iou_thr=IOU_THR,
                                                              skip_box_thr=0.0, conf_type="avg")
    fused = np.asarray(fused, np.float64).reshape(-1, 4) * scale
    members = assign_members(fused, [int(c) for c in fused_labels], preds)
    out = []
    for k, box in enumerate(fused):
        mine = members[k]
        out.append(Detection(category=int(fused_labels[k]), score=float(fused_scores[k]),
                             bbox=tuple(float(v) for v in box), mask=_mean_mask(mine, record),
                             keypoints=_mean_keypoints(mine)))
    return InstancePredictions(image_id=record.id, detections=out)


def iou(box, boxes):
    """IoU of one ``(x0, y0, x1, y1)`` box with each of ``boxes`` ``(N, 4)``."""
    import numpy as np

    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def assign_members(fused, fused_labels: list[int], preds: Sequence[InstancePredictions]) -> list[list[Detection]]:
    """Per fused box, the detections (of every model) of its category that overlap it most,
    by IoU >= :data:`IOU_THR`."""
    import numpy as np

    members: list[list[Detection]] = [[] for _ in fused_labels]
    labels = np.asarray(fused_labels)
    for p in preds:
        for d in p.detections:
            same = np.flatnonzero(labels == d.category)
            if not same.size:
                continue
            overlaps = iou(d.bbox, fused[same])
            best = int(overlaps.argmax())
            if overlaps[best] >= IOU_THR:
                members[same[best]].append(d)
    return members


def _mean_mask(members: list[Detection], record: ImageRecord) -> dict | None:
    import numpy as np

    masks = [d.mask for d in members if d.mask is not None]
    if not masks:
        return None
    total = np.zeros((record.height, record.width), np.float64)
    for rle in masks:
        total += rle_to_mask(rle)
    return mask_to_rle(total / len(masks) >= MASK_THRESHOLD)


def _mean_keypoints(members: list[Detection]) -> list[tuple[float, float, float]] | None:
    import numpy as np

    points = [d.keypoints for d in members if d.keypoints]
    if not points:
        return None
    mean = np.mean(np.asarray(points, np.float64), axis=0)
    return [tuple(float(v) for v in kp) for kp in mean]
