"""Canonical instance predictions <-> COCO results JSON (the list pycocotools' ``loadRes`` reads).

Conventions:

* ``bbox`` is ``[x, y, w, h]`` in pixels, **unrounded** (rounding boxes to whole pixels is a
  known source of mAP drift between tools);
* ``category_id`` is the ground truth's own id (``Dataset.coco_category_ids()``, the ids
  ``to_coco`` writes: a COCO source's ids, else category index + 1);
* ``image_id`` is the COCO image id of the record: by default ``1..N`` in dataset order,
  the numbering ``zoo.evaluation.ground_truth.to_coco`` uses;
* ``segmentation`` is the detection's RLE mask (``counts`` as str), written only when present;
* ``keypoints`` is the flat ``[x0, y0, s0, x1, y1, s1, ...]`` list, the third value being the
  keypoint's score (COCO's OKS ignores it), written only when present.

Read back, a results file is taken as pycocotools' ``loadRes`` takes it: a result without a
``bbox`` gets the box of its mask (and the mask's pixel count as its area) or of its
keypoints (area = that box's); ``segmentation`` may be an RLE with ``counts`` as a string or
a list, or polygons; an empty list is no detections.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from zoo.dataset import Dataset
from zoo.errors import ZooError
from zoo.predictions import Detection, InstancePredictions


def default_image_ids(dataset: Dataset) -> dict[str, int]:
    """Record id -> COCO image id: ``1..N`` in dataset order (``to_coco``'s numbering)."""
    return {r.id: k + 1 for k, r in enumerate(dataset.images)}


def detection_to_coco(det: Detection, image_id: int, category_ids: list[int] | None = None) -> dict[str, Any]:
    """One COCO result dict for one canonical detection (``category_ids``: the ground truth's
    ids by category index, ``Dataset.coco_category_ids()``; default index + 1)."""
    x0, y0, x1, y1 = det.bbox
    x0, y0 = float(x0), float(y0)
    out: dict[str, Any] = {
        "image_id": image_id,
        "category_id": category_ids[det.category] if category_ids is not None else int(det.category) + 1,
        "bbox": [x0, y0, float(x1) - x0, float(y1) - y0],
        "score": float(det.score),
    }
    mask = det.mask
    if mask is not None:
        counts = mask["counts"]
        if not isinstance(counts, str):  # bytes from pycocotools: JSON needs str
            h, w = mask["size"]
            mask = {"size": [int(h), int(w)], "counts": counts.decode("ascii")}
        out["segmentation"] = mask  # shared, not copied: COCO readers never modify it
    if det.keypoints is not None:
        out["keypoints"] = [float(v) for kp in det.keypoints for v in kp]
    return out


def predictions_to_coco_results(
    preds: Iterable[InstancePredictions], image_ids: Mapping[str, int], category_ids: list[int] | None = None
) -> list[dict[str, Any]]:
    """COCO results list for canonical predictions; ``image_ids`` maps record id -> COCO id,
    ``category_ids`` category index -> COCO id (default index + 1)."""
    results = []
    for p in preds:
        try:
            coco_id = image_ids[p.image_id]
        except KeyError:
            raise ZooError(f"prediction for image '{p.image_id}', which is not in the ground truth") from None
        coco_id = int(coco_id)
        results += [detection_to_coco(d, coco_id, category_ids) for d in p.detections]
    return results


def coco_results_to_predictions(
    results: list[dict[str, Any]],
    dataset: Dataset,
    image_ids: Mapping[int | str, str] | None = None,
    *,
    source: str = "results",
) -> list[InstancePredictions]:
    """Canonical predictions (one per dataset image, possibly empty) from a COCO results list.

    ``image_ids`` maps a result's ``image_id`` to a record id; by default ``1..N`` in dataset
    order. A string ``image_id`` equal to a record id is accepted as it is. ``category_id``
    is the ground truth's own (``dataset.coco_category_ids()``). ``source`` names the file
    in error messages.
    """
    if not isinstance(results, list):
        raise ZooError(f"{source}: a COCO results file is a JSON list of detections, got {type(results).__name__}")
    if image_ids is None:
        image_ids = {k + 1: r.id for k, r in enumerate(dataset.images)}
    records = {r.id: r for r in dataset.images}
    by_image: dict[str, list[Detection]] = {r.id: [] for r in dataset.images}
    category_of = {cid: k for k, cid in enumerate(dataset.coco_category_ids())}
    for n, res in enumerate(results):
        where = f"{source}: result {n}"
        rid, category, score = _result_target(res, image_ids, records, category_of, where)
        rec = records[rid]
        mask = _result_mask(res.get("segmentation"), rec.height, rec.width, where)
        keypoints = _result_keypoints(res.get("keypoints"), len(dataset.keypoint_names), where)
        bbox, area = _result_box(res.get("bbox"), mask, keypoints, where)
        by_image[rid].append(Detection(category, score, bbox, mask=mask, keypoints=keypoints, area=area))
    return [InstancePredictions(rid, dets) for rid, dets in by_image.items()]


def _result_target(res, image_ids: Mapping, records: dict, category_of: dict[int, int],
                   where: str) -> tuple[str, int, float]:
    """(record id, category index, score) of one result, each checked against the ground truth."""
    if not isinstance(res, dict):
        raise ZooError(f"{where}: expected an object, got {type(res).__name__}")
    try:
        raw_id, cid, score = res["image_id"], int(res["category_id"]), float(res.get("score", 1.0))
    except (KeyError, TypeError, ValueError) as e:
        raise ZooError(f"{where}: needs image_id, category_id and score ({e})") from None
    rid = image_ids.get(raw_id)
    if rid is None and isinstance(raw_id, str) and raw_id in records:
        rid = raw_id
    if rid is None:
        raise ZooError(f"{where}: image_id {raw_id!r} matches no ground-truth image")
    if cid not in category_of:
        known = ", ".join(map(str, sorted(category_of)))
        raise ZooError(f"{where}: category_id {cid} is not a category of the ground truth (its ids: {known})")
    return rid, category_of[cid], score


def _result_keypoints(kps, k_names: int, where: str) -> list[tuple[float, float, float]] | None:
    """A result's flat ``[x, y, score, ...]`` as points (``k_names`` of them when the dataset
    names its keypoints)."""
    if kps is None:
        return None
    if not isinstance(kps, list) or len(kps) % 3 or (k_names and len(kps) != 3 * k_names):
        n_kps = len(kps) if isinstance(kps, list) else kps
        raise ZooError(f"{where}: {n_kps} keypoint values, expected {3 * k_names} (x, y, score each)")
    return [(float(kps[i]), float(kps[i + 1]), float(kps[i + 2])) for i in range(0, len(kps), 3)]


def _result_box(bbox, mask: dict | None, keypoints, where: str) -> tuple[tuple[float, ...], float | None]:
    """The corner box ``(x0, y0, x1, y1)`` of a result and its area when taken from a mask."""
    area = None
    if not bbox:  # as loadRes: the mask's box and pixel count, else the keypoints' box
        if mask is not None:
            bbox, area = _rle_box(mask), _rle_area(mask)
        elif keypoints:
            xs, ys = [k[0] for k in keypoints], [k[1] for k in keypoints]
            bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise ZooError(f"{where}: needs a bbox [x, y, w, h] (or a segmentation or keypoints to take it from)")
    x, y, w, h = (float(v) for v in bbox)
    return (x, y, x + w, y + h), area


def _result_mask(seg, height: int, width: int, where: str) -> dict | None:
    """A result's ``segmentation`` as a compressed RLE with ``counts`` a str (pycocotools'
    ``annToRLE`` accepts polygons, an uncompressed RLE with list counts, or a compressed one)."""
    if seg is None:
        return None
    from pycocotools import mask as mask_utils

    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        if isinstance(seg["counts"], str):
            return seg
        if isinstance(seg["counts"], bytes):
            return {"size": [int(v) for v in seg["size"]], "counts": seg["counts"].decode("ascii")}
        if isinstance(seg["counts"], list):
            rle = mask_utils.frPyObjects(seg, *(int(v) for v in seg["size"]))
            return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    elif isinstance(seg, list) and seg and all(isinstance(p, list) and len(p) >= 6 for p in seg):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    raise ZooError(f"{where}: segmentation must be an RLE {{'size', 'counts'}} (counts a string or a list) "
                   "or a list of polygons")


def _rle_area(rle: dict) -> float:
    from pycocotools import mask as mask_utils

    return float(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode("ascii")}))


def _rle_box(rle: dict) -> list[float]:
    from pycocotools import mask as mask_utils

    return [float(v) for v in mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode("ascii")})]
