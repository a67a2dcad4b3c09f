"""ultralytics ``Results`` -> zoo's canonical predictions.

ultralytics already maps boxes and keypoints back to the original image (letterbox undone)
as float pixels with the origin at the image's top-left corner, which is zoo's convention:
they are passed on unrounded. Masks are taken at the original resolution (``retina_masks``)
or, when a caller predicted without it, rescaled here the way ultralytics does.

semantic-seg is derived from the instance-seg model: zoo's semantic classes are exactly
background + the instance categories, and its ground-truth label maps are rasterised from
the same instances, so painting the confident instance masks (:func:`to_label_map`) answers
the same question. It suits countable objects (cells, nuclei, lesions), not amorphous
"stuff" regions that were never drawn as separate objects.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.predictions import ClassPrediction, Detection, InstancePredictions, SemanticPrediction


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def to_instances(result: Any, image_id: str, *, with_masks: bool = False, with_keypoints: bool = False) -> InstancePredictions:
    """Detections of one image: boxes, plus masks (instance-seg) or keypoints (pose)."""
    out = InstancePredictions(image_id=image_id)
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return out
    xyxy = _np(boxes.xyxy).astype(float)
    conf = _np(boxes.conf).astype(float)
    cls = _np(boxes.cls).astype(int)
    masks = _masks(result) if with_masks else None
    kps = None
    if with_keypoints and result.keypoints is not None:
        data = _np(result.keypoints.data).astype(float)
        if data.shape[-1] == 2:  # a model without visibility: no per-point confidence
            data = np.concatenate([data, np.ones(data.shape[:-1] + (1,))], axis=-1)
        kps = data
    if masks is not None:
        from zoo.data.raster import mask_to_rle
    for k in range(len(conf)):
        det = Detection(
            category=int(cls[k]),
            score=float(conf[k]),
            bbox=tuple(float(v) for v in xyxy[k]),
        )
        if masks is not None:
            det.mask = mask_to_rle(masks[k])
        if kps is not None:
            det.keypoints = [(float(x), float(y), float(s)) for x, y, s in kps[k]]
        out.detections.append(det)
    return out


def _masks(result: Any) -> np.ndarray | None:
    """``(N, H, W)`` bool masks at the original image size."""
    h, w = result.orig_shape
    if result.masks is None:
        return np.zeros((len(result.boxes), h, w), dtype=bool)
    data = result.masks.data
    if tuple(data.shape[-2:]) != (h, w):
        from ultralytics.utils import ops

        # masks at the letterboxed input size: undo the padding and scale, as ultralytics does
        data = ops.scale_masks(data[None].float(), (h, w))[0]
    return _np(data) > 0.5


def to_class(result: Any, image_id: str, class_of_output: list[int], n_classes: int) -> ClassPrediction:
    """The top class of one image. ``class_of_output[i]`` is zoo's class index of the model's
    output ``i`` (ultralytics orders outputs by class folder name)."""
    probs = _np(result.probs.data).astype(float)
    scores = [0.0] * n_classes
    for i, p in enumerate(probs):
        scores[class_of_output[i]] = float(p)
    return ClassPrediction(image_id=image_id, label=int(np.argmax(scores)), scores=scores)


def to_label_map(result: Any, image_id: str, min_score: float) -> SemanticPrediction:
    """A semantic label map from an instance-seg result: every detection scoring at least
    ``min_score`` paints its mask with its category (``i + 1``; background 0), the least
    confident first, so where masks overlap the most confident wins."""
    h, w = result.orig_shape
    label_map = np.zeros((h, w), dtype=np.uint8)
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return SemanticPrediction(image_id=image_id, label_map=label_map)
    conf = _np(boxes.conf).astype(float)
    cls = _np(boxes.cls).astype(int)
    masks = _masks(result)
    for k in np.argsort(conf, kind="stable"):
        if conf[k] >= min_score:
            label_map[masks[k]] = cls[k] + 1
    return SemanticPrediction(image_id=image_id, label_map=label_map)
