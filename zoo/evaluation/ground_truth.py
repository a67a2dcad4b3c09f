"""The ground truth as COCO: the one conversion of a canonical dataset to a COCO dict, which
the evaluator scores against and the COCO writer (``zoo convert --to coco``) writes.

Conventions of :func:`to_coco` (the evaluator scores against exactly this):

* ``categories[k].id`` is ``Dataset.coco_category_ids()[k]``: a COCO source's own id,
  else ``k + 1`` (COCO reserves 0); a dataset with keypoint names gives every category
  ``keypoints`` and a 1-based ``skeleton``;
* an instance read from a COCO file (``Instance.coco``) is written as the file gave it
  (its bbox, area, iscrowd, segmentation, keypoints): only the ids are renumbered, and only
  fields the file lacked are filled in as below (``iscrowd`` 0); an image's
  ``scored_only`` annotations (zero area: not trained on) are written too, in the file's
  order among the others (:func:`scored_instances`);
* image ids are ``1..N`` in dataset order; ``file_name`` is the record id plus its suffix
  (``"train/cell_001.png"``); annotation ids are ``1..M`` in image then instance order;
* ``bbox`` is ``[x, y, w, h]`` of ``Instance.bbox`` (unrounded floats);
* ``area`` (``geometry="exact"``, the default): the shoelace area of the polygons (parts
  summed), the pixel count of an RLE mask, else ``w * h`` of the box.
  ``geometry="pixels"`` instead takes area *and* bbox from the rasterised mask
  (:func:`zoo.data.raster.pixel_geometry`), which is what labelme's ``labelme2coco.py`` writes;
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

from zoo.dataset import Dataset, ImageRecord, Instance


def _categories(dataset: Dataset) -> list[dict]:
    cats = []
    for cid, name in zip(dataset.coco_category_ids(), dataset.categories):
        c = {"id": cid, "name": name, "supercategory": ""}
        if dataset.keypoint_names:
            c["keypoints"] = list(dataset.keypoint_names)
            c["skeleton"] = [[a + 1, b + 1] for a, b in dataset.skeleton]
        cats.append(c)
    return cats


def box_polygon(b) -> list[float]:
    x0, y0, x1, y1 = b
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def annotation_geometry(inst: Instance, rec: ImageRecord, geometry: str = "exact") -> tuple[float, list[float]]:
    """(area, [x, y, w, h]) of an instance under the named convention (see module doc)."""
    from zoo.data import raster

    if geometry == "pixels" and (inst.polygons or inst.mask is not None):
        return raster.pixel_geometry(inst, rec.height, rec.width)
    x0, y0, x1, y1 = inst.bbox
    box = [x0, y0, x1 - x0, y1 - y0]
    if inst.mask is not None:
        return raster.rle_area(inst.mask), box
    if inst.polygons:
        return sum(raster.polygon_area(p) for p in inst.polygons), box
    return max(0.0, box[2]) * max(0.0, box[3]), box  # Instance.box_area (drafts have none)


def given_annotation(inst: Instance, rec: ImageRecord, ann_id: int, image_id: int, category_id: int,
                     n_kpt: int) -> dict:
    """The COCO annotation of an instance read from a COCO file: the file's fields as given
    (shared, not copied: nothing writes into them), with new ids; a field the file lacked
    is computed as for any other source."""
    a = {"id": ann_id, "image_id": image_id, "category_id": category_id, **inst.coco}
    if "bbox" not in a or "area" not in a:
        area, box = annotation_geometry(inst, rec)
        a.setdefault("bbox", box)
        a.setdefault("area", area)
    a.setdefault("iscrowd", int(inst.ignore))
    a.setdefault("segmentation", inst.polygons or inst.mask or [box_polygon(inst.bbox)])
    if n_kpt and "keypoints" not in a:
        a["keypoints"], a["num_keypoints"] = [0] * (3 * n_kpt), 0
    elif n_kpt and "num_keypoints" not in a:
        a["num_keypoints"] = sum(1 for v in a["keypoints"][2::3] if v > 0)
    return a


def scored_instances(rec: ImageRecord) -> list[Instance]:
    """The image's ground truth as scored: its instances and its ``scored_only`` ones, in the
    COCO file's annotation order (the order pycocotools matches equal overlaps in)."""
    if not rec.scored_only:
        return rec.instances
    # one with no geometry at all is not written (evaluation refuses it first: unscorable)
    kept = [i for i in rec.scored_only if "bbox" in i.coco or "segmentation" in i.coco]
    return sorted(rec.instances + kept, key=lambda i: i.source.shape)


def unscorable(dataset: Dataset) -> str | None:
    """Why pycocotools cannot score this ground truth, or None: a COCO annotation with no
    bbox and no segmentation (pycocotools raises KeyError on it)."""
    for rec in dataset.images:
        for inst in rec.scored_only:
            if "bbox" not in inst.coco and "segmentation" not in inst.coco:  # the reader's test
                return (f"{inst.source}: annotation on image '{rec.id}' has no bbox and no segmentation; "
                        "pycocotools cannot score it (KeyError 'bbox'), nor does zoo: give it one or remove it")
    return None


def to_coco(dataset: Dataset, *, geometry: str = "exact", ignored_pixels: bool = True) -> dict:
    """The COCO dict of a canonical dataset (conventions in the module docstring).

    ``ignored_pixels=False`` (box evaluation only, not for files): an ignored polygon region
    keeps its polygons and its shoelace area instead of being rasterised. Box scoring never
    reads a crowd annotation's segmentation, and its area neither (a crowd region is ignored
    in every area range), so the metrics are the same without the rasterisation.

    The evaluator converts its ground truth through here on every evaluation, so the
    per-instance work is kept to plain Python, and what needs C (pixel counts of RLE masks,
    rasterising ignored polygons) is collected and done in one batched call at the end:
    the same values as :func:`annotation_geometry` and ``mask_to_rle(instance_mask(...))``.
    """
    if geometry not in ("exact", "pixels"):
        raise ValueError(f"geometry must be 'exact' or 'pixels', not {geometry!r}")
    anns = _Annotations(dataset, geometry, ignored_pixels)
    images = []
    for image_id, rec in enumerate(dataset.images, start=1):
        images.append({"id": image_id, "file_name": rec.id + rec.suffix, "width": rec.width, "height": rec.height})
        for inst in scored_instances(rec):  # the hot loop of scoring's ground truth: one call each
            if inst.coco is not None:
                anns.add_given(inst, rec, image_id)
            elif inst.ignore:
                anns.add_ignored(inst, rec, image_id)
            else:
                anns.add_object(inst, rec, image_id)
    anns.count_pixels()
    return {
        "info": {"description": f"written by zoo from {dataset.format or 'a dataset'}",
                 "date_created": datetime.date.today().isoformat()},
        "licenses": [],
        "images": images,
        "annotations": anns.annotations,
        "categories": _categories(dataset),
    }


class _Annotations:
    """The annotations of :func:`to_coco`, made one instance at a time. An area that is a pixel
    count (of an RLE mask, of an ignored region's rasterised polygons) is left None and
    filled in by :meth:`count_pixels`, in one batched call for them all."""

    def __init__(self, dataset: Dataset, geometry: str, ignored_pixels: bool):
        from zoo.data.raster import polygon_area

        self.polygon_area = polygon_area
        self.geometry = geometry
        self.exact = geometry == "exact"
        self.ignored_pixels = ignored_pixels
        self.n_kpt = len(dataset.keypoint_names)
        self.cat_ids = dataset.coco_category_ids()
        self.all_cats = range(len(dataset.categories))
        self.annotations: list[dict] = []
        self.rle_area_of: list[tuple[list[dict], dict]] = []  # (annotations, RLE): area = its pixel count
        self.crowd_polygons: list[tuple[list[dict], tuple]] = []  # (annotations, (polygons, h, w)) to rasterise

    def add_given(self, inst: Instance, rec: ImageRecord, image_id: int) -> None:
        """An annotation read from a COCO file, as the file gave it (:func:`given_annotation`)."""
        self.annotations.append(given_annotation(inst, rec, len(self.annotations) + 1, image_id,
                                                 self.cat_ids[inst.category], self.n_kpt))

    def _area_and_box(self, inst: Instance, rec: ImageRecord) -> tuple[float | None, list[float]]:
        """(area, [x, y, w, h]) as :func:`annotation_geometry`, the area of an RLE mask None
        (a pixel count, made later) under ``geometry="exact"``."""
        if not self.exact:
            return annotation_geometry(inst, rec, self.geometry)
        x0, y0, x1, y1 = inst.bbox
        if inst.mask is not None:
            area = None
        elif inst.polygons:
            area = sum(map(self.polygon_area, inst.polygons))
        else:
            area = inst.box_area
        return area, [x0, y0, x1 - x0, y1 - y0]

    def add_object(self, inst: Instance, rec: ImageRecord, image_id: int) -> None:
        """An object to detect: its polygons, else its mask, else its box as segmentation."""
        area, bbox = self._area_and_box(inst, rec)
        if inst.polygons:
            seg = inst.polygons
        elif inst.mask is not None:
            seg = inst.mask
        else:
            seg = [box_polygon(inst.bbox)]
        a = {"id": len(self.annotations) + 1, "image_id": image_id, "category_id": self.cat_ids[inst.category],
             "bbox": bbox, "area": area, "iscrowd": 0, "segmentation": seg}
        if area is None:
            self.rle_area_of.append(([a], seg))
        if self.n_kpt:
            a["keypoints"], a["num_keypoints"] = _flat_keypoints(inst.keypoints, self.n_kpt)
        self.annotations.append(a)

    def add_ignored(self, inst: Instance, rec: ImageRecord, image_id: int) -> None:
        """A crowd annotation per category it is ignored for (every one for ``category -1``),
        its segmentation an RLE of its pixels (polygons rasterised in :meth:`count_pixels`)."""
        from zoo.data import raster

        area, bbox = self._area_and_box(inst, rec)
        seg = inst.mask
        if seg is None and inst.polygons and not self.ignored_pixels:
            seg = inst.polygons  # area: the shoelace area computed above
        if seg is None and not inst.polygons:
            seg = raster.mask_to_rle(raster.instance_mask(inst, rec.height, rec.width))
        group = []
        for c in self.all_cats if inst.category < 0 else [inst.category]:
            a = {"id": len(self.annotations) + 1, "image_id": image_id, "category_id": self.cat_ids[c],
                 "bbox": bbox, "area": area, "iscrowd": 1, "segmentation": seg}
            if self.n_kpt:
                a["keypoints"], a["num_keypoints"] = [0] * (3 * self.n_kpt), 0
            self.annotations.append(a)
            group.append(a)
        if seg is None:  # ignored polygons: rasterised with the others in count_pixels
            self.crowd_polygons.append((group, (inst.polygons, rec.height, rec.width)))
        elif self.exact and seg is not inst.polygons:  # an RLE: its area is its pixel count
            self.rle_area_of.append((group, seg))

    def count_pixels(self) -> None:
        """Ignored polygons rasterised and areas that are pixel counts filled in, batched."""
        from zoo.data import raster

        # an ignored region is scored as its pixels: polygons rasterised (zoo.data.raster's rule) and
        # its area the pixel count, except under geometry="pixels", which already counted them
        rles = raster.rasterise_polygons_rles([item for _, item in self.crowd_polygons])
        for (group, _), rle in zip(self.crowd_polygons, rles):
            for a in group:
                a["segmentation"] = rle
            if self.exact:
                self.rle_area_of.append((group, rle))
        for (group, _), area in zip(self.rle_area_of, raster.rle_areas([rle for _, rle in self.rle_area_of])):
            for a in group:
                a["area"] = area


def _flat_keypoints(keypoints, n_kpt: int) -> tuple[list[float], int]:
    """COCO's flat ``[x, y, v, ...]`` (unlabelled points all zeros) and the labelled count."""
    flat: list[float] = []
    num = 0
    for x, y, v in keypoints or [(0.0, 0.0, 0)] * n_kpt:
        flat += (x, y, int(v)) if v > 0 else (0, 0, 0)
        num += v > 0
    return flat, num
