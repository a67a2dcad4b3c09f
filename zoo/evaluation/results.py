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

:func:`read_predictions` reads every task's prediction files (this JSON, a folder of label maps,
a CSV of labels): ``zoo eval`` and the run folder read predictions through it.
"""

from __future__ import annotations

import csv
from dataclasses import replace
import io
import math
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from zoo.dataset import Dataset
from zoo.errors import ZooError
from zoo.evaluation.result_guard import ImageBounds, integer, number, read_capped
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
        bounds = ImageBounds(rec.width, rec.height, where)  # every value checked before pycocotools sees it
        mask = _result_mask(res.get("segmentation"), bounds)
        keypoints = _result_keypoints(res.get("keypoints"), len(dataset.keypoint_names), bounds)
        bbox, area = _result_box(res.get("bbox"), mask, keypoints, bounds)
        by_image[rid].append(Detection(category, score, bbox, mask=mask, keypoints=keypoints, area=area))
    return [InstancePredictions(rid, dets) for rid, dets in by_image.items()]


def _result_target(res, image_ids: Mapping, records: dict, category_of: dict[int, int],
                   where: str) -> tuple[str, int, float]:
    """(record id, category index, score) of one result, each checked against the ground truth."""
    if not isinstance(res, dict):
        raise ZooError(f"{where}: expected an object, got {type(res).__name__}")
    missing = [k for k in ("image_id", "category_id") if k not in res]
    if missing:
        raise ZooError(f"{where}: needs image_id, category_id and score (no {', '.join(missing)})")
    raw_id = res["image_id"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, (int, str)):
        raise ZooError(f"{where}: image_id is {type(raw_id).__name__}, not an id (a number or an image name)")
    cid = integer(res["category_id"], where, "category_id")
    score = number(res.get("score", 1.0), where, "score")
    rid = image_ids.get(raw_id)
    if rid is None and isinstance(raw_id, str) and raw_id in records:
        rid = raw_id
    if rid is None:
        raise ZooError(f"{where}: image_id {raw_id!r} matches no ground-truth image")
    if cid not in category_of:
        known = ", ".join(map(str, sorted(category_of)))
        raise ZooError(f"{where}: category_id {cid} is not a category of the ground truth (its ids: {known})")
    return rid, category_of[cid], score


def _result_keypoints(kps, k_names: int, bounds: ImageBounds) -> list[tuple[float, float, float]] | None:
    """A result's flat ``[x, y, score, ...]`` as points (``k_names`` of them when the dataset
    names its keypoints)."""
    if kps is None:
        return None
    return bounds.keypoints(kps, k_names)


def _result_box(bbox, mask: dict | None, keypoints, bounds: ImageBounds) -> tuple[tuple[float, ...], float | None]:
    """The corner box ``(x0, y0, x1, y1)`` of a result and its area when taken from a mask."""
    area = None
    if not bbox:  # as loadRes: the mask's box and pixel count, else the keypoints' box
        if mask is not None:
            bbox, area = _rle_box(mask), _rle_area(mask)
        elif keypoints:
            xs, ys = [k[0] for k in keypoints], [k[1] for k in keypoints]
            bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise ZooError(f"{bounds.where}: needs a bbox [x, y, w, h] (or a segmentation or keypoints to take it from)")
    x, y, w, h = bounds.box(bbox)
    return (x, y, x + w, y + h), area


def _result_mask(seg, bounds: ImageBounds) -> dict | None:
    """A result's ``segmentation`` as a compressed RLE with ``counts`` a str (pycocotools'
    ``annToRLE`` accepts polygons, an uncompressed RLE with list counts, or a compressed one)."""
    if seg is None:
        return None
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        return bounds.rle(seg)
    if isinstance(seg, list) and seg:
        from pycocotools import mask as mask_utils

        polygons = bounds.polygons(seg)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, bounds.height, bounds.width))
        return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    raise ZooError(f"{bounds.where}: segmentation must be an RLE {{'size', 'counts'}} (counts a string or a list) "
                   "or a list of polygons")


def _rle_area(rle: dict) -> float:
    from pycocotools import mask as mask_utils

    return float(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode("ascii")}))


def _rle_box(rle: dict) -> list[float]:
    from pycocotools import mask as mask_utils

    return [float(v) for v in mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode("ascii")})]


# -- the prediction files ------------------------------------------------------------------------


def read_predictions(task, path: Path, dataset: Dataset, gt_path: Path | None = None, *,
                     coco_ids: Mapping[int | str, str] | None = None) -> list:
    """The one reader of prediction files (``zoo eval --pred``, a run folder's predictions/),
    by what the task's answer is (``Task.answer_kind``):

    * instances (detect, instance-seg, keypoint): a COCO results JSON (a list of
      ``{image_id, category_id, bbox, score[, segmentation][, keypoints]}``). ``image_id`` is
      matched to the ground truth by the GT COCO file's own ids when ``gt_path`` is a COCO
      JSON, else by zoo's numbering (1..N in the order the reader returns images, what ``zoo
      run`` writes); a string ``image_id`` may also name the image itself. ``category_id`` is
      the ground truth's category id (category index + 1 unless the GT is a COCO file);
    * label_map (semantic-seg): a folder of single-channel PNG label maps (background 0,
      category i at i+1), one per image, named like the image (the base name alone also works);
    * label (classify): a CSV ``image,label[,score_<class>...]`` (:func:`read_label_csv`).

    ``coco_ids``: :func:`coco_image_ids` of ``gt_path`` when the caller already has them.
    """
    path = Path(path)
    if not path.exists():
        raise ZooError(f"{path}: no such file or folder")
    if task.answer_kind == "instances":
        preds = read_coco_results(path, dataset, gt_path, coco_ids=coco_ids)
    elif task.answer_kind == "label_map":
        preds = read_mask_folder(path, dataset)
    else:
        preds = read_label_csv(path, dataset)
    _check_for_task(task, preds, dataset, path)
    return preds


def _check_for_task(task, preds: list, dataset: Dataset, path: Path) -> None:
    """What the task needs of each prediction (keypoints for keypoint, a mask for
    instance-seg, ...), as a backend's predictions are checked: one line naming the file."""
    for pred in preds:
        problems = task.validate(pred, dataset)
        if problems:
            raise ZooError(f"{path}: image '{pred.image_id}': {problems[0]}")


def read_coco_results(path: Path, dataset: Dataset, gt_path: Path | None = None, *,
                      coco_ids: Mapping[int | str, str] | None = None) -> list:
    """A COCO results JSON (or a whole COCO file, its annotations taken as results)."""
    import orjson

    if path.is_dir():
        raise ZooError(f"{path}: expected a COCO results JSON file, got a folder")
    try:
        results = orjson.loads(read_capped(path))
    except orjson.JSONDecodeError as e:
        raise ZooError(f"{path}: not valid JSON ({e}); predictions for this task are a COCO results JSON") from None
    if isinstance(results, dict) and isinstance(results.get("annotations"), list):
        results = results["annotations"]  # a whole COCO file given as results: use its annotations
    ids = coco_ids if coco_ids is not None or gt_path is None else coco_image_ids(gt_path, dataset)
    return coco_results_to_predictions(results, dataset, ids, source=str(path))


def coco_image_ids(gt_path: Path, dataset: Dataset) -> dict[int, str] | None:
    """COCO image id -> record id from a GT COCO JSON's ``images`` (matched by file name)."""
    import orjson

    if not (gt_path.is_file() and gt_path.suffix.lower() == ".json"):
        return None
    try:
        data = orjson.loads(gt_path.read_bytes())
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        return None
    find = _name_index(dataset)
    out = {}
    for img in data["images"]:
        rid = find(str(img.get("file_name", "")))
        if rid is not None and "id" in img:
            out[img["id"]] = rid
    return out or None


def in_coco_id_order(dataset: Dataset, coco_ids: Mapping[int | str, str] | None) -> Dataset:
    """``dataset`` with its images in the order of the ground-truth file's own image ids
    (``coco_ids``: :func:`coco_image_ids`), the order pycocotools accumulates in: detections of
    equal score on different images rank by it. Images the file does not name stay last, in
    their order; ids that do not sort (a mix of numbers and text) leave the order as it is."""
    if not coco_ids:
        return dataset
    try:
        ranked = sorted(coco_ids)
    except TypeError:
        return dataset
    rank = {coco_ids[k]: n for n, k in enumerate(ranked)}
    images = sorted(dataset.images, key=lambda r: rank.get(r.id, len(rank)))
    return replace(dataset, images=images)


def _name_index(dataset):
    """A function: a file name / path / id -> the record id it names (or None)."""
    exact = {r.id: r.id for r in dataset.images}
    by_base: dict[str, list[str]] = {}
    for r in dataset.images:
        by_base.setdefault(PurePosixPath(r.id).name, []).append(r.id)

    def find(name: str) -> str | None:
        name = name.replace("\\", "/").strip()
        stem = str(PurePosixPath(name).with_suffix("")) if PurePosixPath(name).suffix else name
        for key in (name, stem):
            if key in exact:
                return key
        base = PurePosixPath(stem).name
        hits = by_base.get(base, [])
        if len(hits) == 1:
            return hits[0]
        hits = [r for r in exact if stem.endswith("/" + r) or r.endswith("/" + stem)]
        return hits[0] if len(hits) == 1 else None

    return find


def read_mask_folder(folder: Path, dataset: Dataset) -> list:
    """One single-channel PNG label map per image, named like the image (or its base name)."""
    import numpy as np
    from PIL import Image

    from zoo.predictions import SemanticPrediction

    if not folder.is_dir():
        raise ZooError(f"{folder}: expected a folder of PNG label maps for semantic-seg")
    pngs = {p.relative_to(folder).with_suffix("").as_posix(): p for p in folder.rglob("*.png")}
    by_base: dict[str, list[Path]] = {}
    for key, p in pngs.items():
        by_base.setdefault(PurePosixPath(key).name, []).append(p)
    preds = []
    for r in dataset.images:
        path = pngs.get(r.id)
        if path is None:
            hits = by_base.get(PurePosixPath(r.id).name, [])
            path = hits[0] if len(hits) == 1 else None
        if path is None:
            raise ZooError(f"{folder / (r.id + '.png')}: no predicted label map for image '{r.id}'")
        preds.append(SemanticPrediction(r.id, _label_map(path, r.width, r.height)))
    return preds


def _label_map(path: Path, width: int, height: int):
    """A single-channel PNG of exactly the image's size; its header is checked before a
    pixel is decoded (a 30000x30000 header must not be decoded), PIL's bomb warning kept off
    the screen."""
    import numpy as np

    from zoo.files import open_image

    with open_image(path) as img:
        if img.size != (width, height):
            raise ZooError(f"{path}: label map is {img.size[0]}x{img.size[1]}, the image is {width}x{height}")
        if img.mode not in ("L", "P", "I", "I;16", "1"):
            raise ZooError(f"{path}: a label map must be single-channel (L or P mode), got {img.mode}")
        img.load()
        return np.asarray(img)


def read_label_csv(path: Path, dataset: Dataset) -> list:
    """``image,label[,score_<class>...]`` (header optional): image is the image id, its file
    name or base name, label a class name or index; the class scores, when a header names one
    ``score_<class>`` column per class and a row fills them all (what ``zoo run`` writes)."""
    if path.is_dir():
        raise ZooError(f"{path}: expected a CSV file 'image,label' for classify, got a folder")
    try:
        text = read_capped(path).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ZooError(f"{path}: not UTF-8 text (byte {e.start}); save the CSV as UTF-8") from None
    try:
        return _label_rows(path, text, dataset)
    except csv.Error as e:  # a field over csv's limit, a NUL byte, ...
        raise ZooError(f"{path}: not a readable CSV ({e})") from None


def _label_rows(path: Path, text: str, dataset: Dataset) -> list:
    from zoo.predictions import ClassPrediction

    find = _name_index(dataset)
    preds = []
    score_cols = None
    for line, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 2:
            raise ZooError(f"{path}: line {line}: expected 'image,label', got {','.join(row)[:80]!r}")
        image = row[0].strip()
        if line == 1 and image.lower() in ("image", "image_id", "file", "filename", "file_name"):
            score_cols = _score_columns(row, dataset.classes)
            continue  # header
        rid = find(image)
        if rid is None:
            raise ZooError(f"{path}: line {line}: image {image[:80]!r} is not in the ground truth")
        label = _class_index(row[1].strip(), dataset.classes, f"{path}: line {line}")
        preds.append(ClassPrediction(rid, label, _row_scores(row, score_cols, f"{path}: line {line}")))
    if not preds:
        raise ZooError(f"{path}: no predictions in the file")
    return preds


def _class_index(label: str, classes: list[str], where: str) -> int:
    """A class named, or given by its index."""
    if label in classes:
        return classes.index(label)
    if label.isascii() and label.isdigit() and int(label) < len(classes):  # "²".isdigit(), but no int
        return int(label)
    from zoo.errors import did_you_mean

    if len(label) > 200:  # not a misspelt class name: no edit distance over a huge field
        raise ZooError(f"{where}: unknown class {label[:40]!r}... ({len(label)} characters)")
    raise ZooError(f"{where}: unknown class {label!r}{did_you_mean(label, {n: k for k, n in enumerate(classes)})}")


def _score_columns(header: list[str], classes: list[str]) -> list[int] | None:
    """The column of ``score_<class>`` for every class, in class order, or None."""
    at = {name.strip(): k for k, name in enumerate(header)}
    cols = [at.get(f"score_{c}") for c in classes]
    return cols if classes and all(c is not None for c in cols) else None


def _row_scores(row: list[str], cols: list[int] | None, where: str) -> list[float] | None:
    values = [row[c].strip() if c < len(row) else "" for c in cols] if cols else []
    if not values or not all(values):
        return None
    try:
        scores = [float(v) for v in values]
    except ValueError:
        raise ZooError(f"{where}: a class score is not a number") from None
    if not all(math.isfinite(v) for v in scores):
        raise ZooError(f"{where}: a class score is not a finite number")
    return scores
