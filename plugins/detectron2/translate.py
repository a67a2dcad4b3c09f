"""detectron2's ``Instances`` -> canonical predictions, in original-image pixels.

detectron2's models already return their outputs at the ``height``/``width`` given with the
input (``detector_postprocess``): boxes ``XYXY_ABS``, full-image boolean masks, keypoints
``(x, y, score)``. Classes are zoo's category indices (contiguous from 0 on both sides).
"""

from __future__ import annotations

from zoo.predictions import Detection, InstancePredictions


def instances_to_prediction(image_id: str, instances, width: int, height: int) -> InstancePredictions:
    """One image's ``Instances`` (on any device) as canonical detections; a mask or keypoints
    field is translated when the model predicts it."""
    from zoo.data.raster import mask_to_rle

    instances = instances.to("cpu")
    boxes = instances.pred_boxes.tensor.double()
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    scores = instances.scores.tolist()
    classes = instances.pred_classes.tolist()
    masks = instances.pred_masks.numpy() if instances.has("pred_masks") else None
    keypoints = instances.pred_keypoints.tolist() if instances.has("pred_keypoints") else None
    dets = []
    for k in range(len(instances)):
        det = Detection(category=int(classes[k]), score=float(scores[k]), bbox=tuple(float(v) for v in boxes[k]))
        if masks is not None:
            det.mask = mask_to_rle(masks[k].astype(bool))
        if keypoints is not None:
            det.keypoints = [(float(x), float(y), float(s)) for x, y, s in keypoints[k]]
        dets.append(det)
    return InstancePredictions(image_id=image_id, detections=dets)
