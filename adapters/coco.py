"""COCO JSON: the canonical dataset to a COCO dict (and a writer), and COCO files in.

Conventions of :func:`to_coco` (the evaluator scores against exactly this):

* ``categories[k].id = k + 1`` for ``Dataset.categories[k]`` (COCO reserves 0); a dataset
  with keypoint names gives every category ``keypoints`` and a 1-based ``skeleton``;
* image ids are ``1..N`` in dataset order; ``file_name`` is the record id plus its suffix
  (``"train/cell_001.png"``); annotation ids are ``1..M`` in image then instance order;
* ``bbox`` is ``[x, y, w, h]`` of ``Instance.bbox`` (unrounded floats);
* ``area`` (``geometry="exact"``, the default): the shoelace area of the polygons (parts
  summed), the pixel count of an RLE mask, else ``w * h`` of the box.
  ``geometry="pixels"`` instead takes area *and* bbox from the rasterised mask
  (:func:`zoo.raster.pixel_geometry`), which is what labelme's ``labelme2coco.py`` writes;
* ``segmentation``: the polygons, else the RLE mask, else the box as a 4-corner polygon
  (so ``segm`` evaluation works on box-only data);
* an ignored instance is ``iscrowd=1`` with an RLE segmentation; ``category == -1``
  (ignored for every category, labelme's ``__ignore__``) is expanded to one crowd
  annotation per category;
* keypoints are flat ``[x, y, v, ...]`` with ``num_keypoints`` = labelled points (v > 0);
  instances without keypoints in a keypoint dataset get all zeros.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from zoo.dataset import Dataset, ImageRecord, Instance


def _categories(dataset: Dataset) -> list[dict]:
    cats = []
    for k, name in enumerate(dataset.categories):
        c = {"id": k + 1, "name": name, "supercategory": ""}
        if dataset.keypoint_names:
            c["keypoints"] = list(dataset.keypoint_names)
            c["skeleton"] = [[a + 1, b + 1] for a, b in dataset.skeleton]
        cats.append(c)
    return cats


def _box_polygon(b) -> list[float]:
    x0, y0, x1, y1 = b
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def annotation_geometry(inst: Instance, rec: ImageRecord, geometry: str = "exact") -> tuple[float, list[float]]:
    """(area, [x, y, w, h]) of an instance under the named convention (see module doc)."""
    from zoo import raster

    if geometry == "pixels" and (inst.polygons or inst.mask is not None):
        return raster.pixel_geometry(inst, rec.height, rec.width)
    x0, y0, x1, y1 = inst.bbox
    box = [x0, y0, x1 - x0, y1 - y0]
    if inst.mask is not None:
        return raster.rle_area(inst.mask), box
    if inst.polygons:
        return sum(raster.polygon_area(p) for p in inst.polygons), box
    return inst.box_area, box


def to_coco(dataset: Dataset, *, geometry: str = "exact") -> dict:
    """The COCO dict of a canonical dataset (conventions in the module docstring)."""
    from zoo import raster

    if geometry not in ("exact", "pixels"):
        raise ValueError(f"geometry must be 'exact' or 'pixels', not {geometry!r}")
    n_kpt = len(dataset.keypoint_names)
    images, anns = [], []
    for image_id, rec in enumerate(dataset.images, start=1):
        images.append(
            {"id": image_id, "file_name": rec.id + rec.suffix, "width": rec.width, "height": rec.height}
        )
        for inst in rec.instances:
            area, bbox = annotation_geometry(inst, rec, geometry)
            if inst.ignore:
                seg = inst.mask or raster.mask_to_rle(raster.instance_mask(inst, rec.height, rec.width))
                if geometry != "pixels" and inst.mask is None:
                    area = raster.rle_area(seg)
                cats = range(len(dataset.categories)) if inst.category < 0 else [inst.category]
                for c in cats:
                    a = {"id": len(anns) + 1, "image_id": image_id, "category_id": c + 1,
                         "bbox": bbox, "area": area, "iscrowd": 1, "segmentation": seg}
                    if n_kpt:
                        a["keypoints"] = [0] * (3 * n_kpt)
                        a["num_keypoints"] = 0
                    anns.append(a)
                continue
            if inst.polygons:
                seg = inst.polygons
            elif inst.mask is not None:
                seg = inst.mask
            else:
                seg = [_box_polygon(inst.bbox)]
            a = {"id": len(anns) + 1, "image_id": image_id, "category_id": inst.category + 1,
                 "bbox": bbox, "area": area, "iscrowd": 0, "segmentation": seg}
            if n_kpt:
                flat: list[float] = []
                num = 0
                kps = inst.keypoints or [(0.0, 0.0, 0)] * n_kpt
                for x, y, v in kps:
                    flat += (x, y, int(v)) if v > 0 else (0, 0, 0)
                    num += v > 0
                a["keypoints"] = flat
                a["num_keypoints"] = num
            anns.append(a)
    return {
        "info": {"description": f"written by zoo from {dataset.format or 'a dataset'}",
                 "date_created": datetime.date.today().isoformat()},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": _categories(dataset),
    }
