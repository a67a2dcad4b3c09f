"""Fallback canonical -> COCO ground-truth dict, used only while ``zoo.adapters.coco.to_coco``
is not installed. Same contract: category_id = index + 1, image ids 1..N in dataset order,
ignore -> iscrowd=1 (category -1 expanded to one crowd annotation per category).

area: mask area for a mask, polygon area for polygons, box area otherwise (what the COCO
area ranges small/medium/large are measured on).
"""

from __future__ import annotations

from typing import Any

from zoo.dataset import Dataset, Instance


def to_coco(dataset: Dataset) -> dict[str, Any]:
    images, annotations = [], []
    n_cats = len(dataset.categories)
    for k, rec in enumerate(dataset.images):
        image_id = k + 1
        images.append({"id": image_id, "file_name": rec.id + rec.suffix, "width": rec.width, "height": rec.height})
        for inst in rec.instances:
            cats = range(n_cats) if inst.category == -1 else [inst.category]
            for c in cats:
                ann = _annotation(inst, rec.height, rec.width)
                ann.update(id=len(annotations) + 1, image_id=image_id, category_id=c + 1)
                annotations.append(ann)
    categories = []
    for i, name in enumerate(dataset.categories):
        cat: dict[str, Any] = {"id": i + 1, "name": name, "supercategory": ""}
        if dataset.keypoint_names:
            cat["keypoints"] = list(dataset.keypoint_names)
            cat["skeleton"] = [[a + 1, b + 1] for a, b in dataset.skeleton]
        categories.append(cat)
    return {"images": images, "annotations": annotations, "categories": categories}


def _annotation(inst: Instance, height: int, width: int) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    x0, y0, x1, y1 = inst.bbox
    ann: dict[str, Any] = {"bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": int(inst.ignore)}
    if inst.mask is not None:
        rle = dict(inst.mask)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
        ann["segmentation"] = inst.mask
        ann["area"] = float(mask_utils.area(rle))
    elif inst.polygons:
        ann["segmentation"] = [list(p) for p in inst.polygons]
        rles = mask_utils.frPyObjects(ann["segmentation"], height, width)
        ann["area"] = float(mask_utils.area(mask_utils.merge(rles)))
    else:
        ann["segmentation"] = [[x0, y0, x1, y0, x1, y1, x0, y1]]
        ann["area"] = inst.box_area
    if inst.keypoints is not None:
        ann["keypoints"] = [float(v) for kp in inst.keypoints for v in kp]
        ann["num_keypoints"] = sum(1 for kp in inst.keypoints if kp[2] > 0)
    return ann
