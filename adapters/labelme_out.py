"""labelme JSON out: a dataset back to labelme, and predictions as labelme files a person
can open, correct and feed back to zoo (the active-learning loop).

Shapes written (labelme 5.x schema; labelme, X-AnyLabeling and zoo's reader open them):

* polygon parts of one instance share a ``group_id``; a box-only instance is a
  ``rectangle``; an RLE mask is a labelme 5 ``mask`` shape (PNG of its bounding crop and the
  crop's two corner pixels, inclusive);
* keypoints are ``point`` shapes named after the keypoint, in the instance's ``group_id``;
* an instance ignored for every category is labelled ``__ignore__``; one ignored for its
  own category keeps its label with ``"difficult": true`` (X-AnyLabeling's key, which zoo
  reads back as ignored);
* image classes are the ``flags`` (every class present, true or false);
* predictions carry their ``score`` on each shape (an extra key labelme keeps) and in its
  ``description``.

``imagePath`` is relative to the JSON file; ``imageData`` is null (labelme loads the file).
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

from zoo.adapters.writing import OutputNames, copy_image, write_bytes
from zoo.data.labels import IGNORE_LABEL
from zoo.data.raster import rle_to_mask
from zoo.dataset import Dataset, ImageRecord, embedded_image_bytes
from zoo.predictions import ClassPrediction, InstancePredictions, SemanticPrediction
from zoo.progress import track

LABELME_VERSION = "5.5.0"


def _shape(label, points, shape_type, group_id=None, **extra) -> dict:
    s = {"label": label, "points": points, "group_id": group_id, "description": "",
         "shape_type": shape_type, "flags": {}, "mask": None}
    s.update(extra)
    return s


def _pairs(flat) -> list[list[float]]:
    return [[float(x), float(y)] for x, y in zip(flat[0::2], flat[1::2])]


def _mask_shape(rle: dict, label: str, group_id, **extra) -> dict | None:
    import numpy as np
    from PIL import Image

    m = rle_to_mask(rle)
    rows = np.flatnonzero(m.any(axis=1))
    cols = np.flatnonzero(m.any(axis=0))
    if not len(rows):
        return None
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    crop = (m[y0:y1 + 1, x0:x1 + 1].astype(np.uint8)) * 255
    buf = io.BytesIO()
    Image.fromarray(crop).convert("1").save(buf, format="PNG")
    s = _shape(label, [[float(x0), float(y0)], [float(x1), float(y1)]], "mask", group_id, **extra)
    s["mask"] = base64.b64encode(buf.getvalue()).decode("ascii")
    return s


def instance_shapes(inst, dataset: Dataset, group_id: int, extra: dict | None = None) -> list[dict]:
    extra = dict(extra or {})
    if inst.category < 0:
        label = IGNORE_LABEL
    else:
        label = dataset.categories[inst.category]
        if inst.ignore:
            extra["difficult"] = True
    shapes = []
    needs_group = len(inst.polygons) > 1 or bool(inst.keypoints)
    gid = group_id if needs_group else None
    if inst.mask is not None:
        s = _mask_shape(inst.mask, label, gid, **extra)
        if s is not None:
            shapes.append(s)
    elif inst.polygons:
        for p in inst.polygons:
            shapes.append(_shape(label, _pairs(p), "polygon", gid, **extra))
    else:
        x0, y0, x1, y1 = inst.bbox
        shapes.append(_shape(label, [[float(x0), float(y0)], [float(x1), float(y1)]], "rectangle", gid, **extra))
    if inst.keypoints:
        for name, kp in zip(dataset.keypoint_names, inst.keypoints):
            x, y, v = kp[0], kp[1], kp[2]
            if v > 0:
                kextra = {"score": float(v)} if "score" in extra else {}
                shapes.append(_shape(name, [[float(x), float(y)]], "point", gid, **kextra))
    return shapes


def labelme_dict(rec: ImageRecord, dataset: Dataset, image_path: str, shapes: list[dict],
                 flags: dict | None = None) -> dict:
    return {
        "version": LABELME_VERSION,
        "flags": flags if flags is not None else {c: (i in rec.labels) for i, c in enumerate(dataset.classes)},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": rec.height,
        "imageWidth": rec.width,
    }


def write(dataset: Dataset, out: Path, *, task: str | None = None) -> Path:
    """One ``<id>.json`` beside a copy of its image ``<id><suffix>`` under ``out``."""
    import orjson

    out = Path(out)
    names = OutputNames()
    for rec in track(dataset.images, "writing labelme", total=len(dataset.images)):
        img = copy_image(rec, out, names(rec.id))
        shapes = []
        for g, inst in enumerate(rec.instances):
            shapes += instance_shapes(inst, dataset, g)
        data = labelme_dict(rec, dataset, img.name, shapes)
        write_bytes(out, names(rec.id), ".json", orjson.dumps(data, option=orjson.OPT_INDENT_2))
    return out


def _contour_polygons(mask, min_points: int = 3) -> list[list[float]]:
    """Outer contours of a bool mask, lightly simplified (labelme is for editing by hand)."""
    import cv2
    import numpy as np

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        c = cv2.approxPolyDP(c, 0.7, True).reshape(-1, 2).astype(float)
        if len(c) >= min_points:
            out.append([float(v) for v in (c + 0.5).ravel()])
    return out


def prediction_to_labelme(prediction, meta: Dataset, record: ImageRecord, json_path: str | Path, *,
                          image_path: str | Path | None = None, min_score: float = 0.0) -> Path:
    """Write one image's prediction as a labelme JSON at ``json_path`` so a person can
    correct it in labelme and give it back to zoo as training data.

    ``prediction``: an :class:`~zoo.predictions.InstancePredictions` (boxes -> rectangles,
    masks -> polygons, keypoints -> points in the detection's group),
    :class:`~zoo.predictions.SemanticPrediction` (each class region -> polygons) or
    :class:`~zoo.predictions.ClassPrediction` (-> flags). ``meta``: the dataset vocabularies
    (``Dataset.meta()``); ``record``: the image (size; its file is what ``imagePath`` points
    at, relative to the JSON, unless ``image_path`` is given). Detections below
    ``min_score`` are left out. Nothing is written beside the user's images unless
    ``json_path`` is put there.
    """
    import numpy as np
    import orjson

    json_path = Path(json_path)
    target_img = Path(image_path) if image_path is not None else record.file
    image_data = None
    if target_img is not None:
        rel = os.path.relpath(Path(target_img).resolve(), json_path.parent.resolve())
    else:  # pixels only embedded in a source labelme JSON: embed them again
        rel = json_path.with_suffix(record.suffix).name
        image_data = base64.b64encode(embedded_image_bytes(record.embedded)).decode("ascii") if record.embedded else None
    shapes: list[dict] = []
    flags = {c: False for c in meta.classes}
    if isinstance(prediction, InstancePredictions):
        for g, det in enumerate(d for d in prediction.detections if d.score >= min_score):
            label = meta.categories[det.category]
            extra = {"score": float(det.score), "description": f"score {det.score:.3f}"}
            polys = _contour_polygons(rle_to_mask(det.mask)) if det.mask is not None else []
            gid = g if (len(polys) > 1 or det.keypoints) else None
            if polys:
                shapes += [_shape(label, _pairs(p), "polygon", gid, **extra) for p in polys]
            else:
                x0, y0, x1, y1 = det.bbox
                shapes.append(_shape(label, [[float(x0), float(y0)], [float(x1), float(y1)]], "rectangle", gid, **extra))
            for name, (x, y, s) in zip(meta.keypoint_names, det.keypoints or []):
                shapes.append(_shape(name, [[float(x), float(y)]], "point", gid, score=float(s)))
    elif isinstance(prediction, SemanticPrediction):
        lm = np.asarray(prediction.label_map)
        for k, name in enumerate(meta.categories):
            m = lm == k + 1
            if m.any():
                shapes += [_shape(name, _pairs(p), "polygon") for p in _contour_polygons(m)]
    elif isinstance(prediction, ClassPrediction):
        if 0 <= prediction.label < len(meta.classes):
            flags[meta.classes[prediction.label]] = True
    else:
        raise TypeError(f"not a zoo prediction: {type(prediction).__name__}")
    data = labelme_dict(record, meta, rel.replace(os.sep, "/"), shapes, flags=flags)
    data["imageData"] = image_data
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    return json_path
