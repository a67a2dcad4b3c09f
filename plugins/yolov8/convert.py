"""Canonical train / val datasets -> the folder layout ultralytics trains from.

Detect, segment and pose share one layout (``images/<split>/...`` beside
``labels/<split>/....txt``, one normalised line per object, and a ``data.yaml``); classify
is one folder per class under ``<split>/``.

Private to the plugin: ultralytics' exact expectations (class folders aligned by name,
``kpt_shape``, ``flip_idx``) are the plugin's business. zoo's general YOLO writers live in
``zoo.adapters``; this one only has to be what ultralytics reads.

Images are *copied*, never linked: ultralytics rewrites a JPEG it finds truncated in place,
which through a link would modify the user's file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from zoo.dataset import Dataset, ImageRecord, Instance
from zoo.progress import track

# What ultralytics calls each task, and the suffix of its model files.
FRAMEWORK_TASK = {"detect": "detect", "instance-seg": "segment", "keypoint": "pose", "classify": "classify"}
MODEL_SUFFIX = {"detect": "", "instance-seg": "-seg", "keypoint": "-pose", "classify": "-cls"}
_IMG_OK = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def class_folder_names(classes: list[str]) -> list[str]:
    """One folder name per image class: its index first, so folder order is class order and
    two names that sanitise alike never share a folder."""
    from zoo.adapters.common import safe_name

    return [f"{i:03d}_{safe_name(c)}" for i, c in enumerate(classes)]


def write_dataset(task: str, train: Dataset, val: Dataset, out: Path) -> Path:
    """Write ``train`` and ``val`` for ultralytics under ``out``; return what to pass as
    ``data=`` (a YAML file, or the classify root folder)."""
    out = Path(out).resolve()
    if out.exists():
        shutil.rmtree(out)  # scratch: always rebuilt from the canonical data
    if task == "classify":
        names = class_folder_names(train.classes)
        for split, ds in (("train", train), ("val", val)):
            for n in names:
                (out / split / n).mkdir(parents=True, exist_ok=True)
            for rec in track(ds.images, f"writing {split} images"):
                if len(rec.labels) != 1:
                    continue  # unlabelled or multi-label images cannot train a single-label head
                _write_image(rec, out / split / names[rec.labels[0]] / _flat_name(rec))
        return out
    for split, ds in (("train", train), ("val", val)):
        for rec in track(ds.images, f"writing {split} images"):
            image = out / "images" / split / _rel(rec)
            _write_image(rec, image)
            label = (out / "labels" / split / _rel(rec)).with_suffix(".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("".join(_label_lines(task, rec, train)), encoding="utf-8")
    data = {
        "path": str(out),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(train.categories)),
    }
    if task == "keypoint":
        from zoo.adapters.common import flip_index

        data["kpt_shape"] = [len(train.keypoint_names), 3]
        data["flip_idx"] = flip_index(train.keypoint_names)
    import yaml

    yaml_file = out / "data.yaml"
    yaml_file.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return yaml_file


def _rel(rec: ImageRecord) -> Path:
    """The image's path below ``images/<split>``: its id (folders kept) plus its suffix."""
    from zoo.adapters.common import safe_relpath

    base = Path("/")
    rel = safe_relpath(rec.id, base).relative_to(base)
    return rel.with_name(rel.name + _suffix(rec))


def _flat_name(rec: ImageRecord) -> str:
    return str(_rel(rec)).replace("/", "__")


def _suffix(rec: ImageRecord) -> str:
    return rec.suffix if rec.suffix in _IMG_OK else ".png"


def _write_image(rec: ImageRecord, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if rec.file is not None and rec.file.suffix.lower() in _IMG_OK and not _rotated(rec.file):
        shutil.copyfile(rec.file, target)
    else:  # embedded pixels, an exotic format, or an EXIF rotation: write what zoo sees
        rec.open().save(target)


def _rotated(file: Path) -> bool:
    """Whether EXIF asks for a rotation (zoo's coordinates are after it; write upright)."""
    from PIL import Image

    try:
        with Image.open(file) as im:
            return im.getexif().get(0x0112, 1) not in (1, None)
    except OSError:
        return False


def _label_lines(task: str, rec: ImageRecord, meta: Dataset) -> list[str]:
    w, h = rec.width, rec.height
    lines = []
    for inst in rec.instances:
        # ultralytics has no "ignore" region: such objects are left out of training
        # (zoo's evaluator still honours them when scoring).
        if inst.ignore or inst.category < 0:
            continue
        x0, y0, x1, y1 = (max(0.0, min(v, lim)) for v, lim in zip(inst.bbox, (w, h, w, h)))
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            continue
        box = [(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h]
        if task == "detect":
            values = box
        elif task == "instance-seg":
            values = _outline(inst, h, w)
            if len(values) < 6:
                continue
            values = [v / (w if i % 2 == 0 else h) for i, v in enumerate(values)]
        else:  # keypoint
            kps = inst.keypoints or [(0.0, 0.0, 0)] * len(meta.keypoint_names)
            values = box + [
                v
                for x, y, vis in kps
                for v in ((x / w, y / h, float(vis)) if vis > 0 else (0.0, 0.0, 0.0))
            ]
        # ultralytics rejects normalised values outside [0, 1]; vertices a hair past the
        # border (common in labelme files) are pulled onto it.
        lines.append(f"{inst.category} " + " ".join(f"{min(max(v, 0.0), 1.0):.6g}" for v in values) + "\n")
    return lines


def _outline(inst: Instance, height: int, width: int) -> list[float]:
    """One closed outline for a YOLO segment line, in pixels.

    ultralytics takes one polygon per object. A single polygon is used as drawn; several
    parts (labelme ``group_id``) are joined at their nearest vertices, as ultralytics does for
    COCO (the joins are zero-width and add no area); an RLE mask gives its outer contours; a
    box-only object gives its rectangle.
    """
    if inst.polygons and len(inst.polygons) == 1:
        return list(inst.polygons[0])
    if inst.polygons:
        return _join_parts([np.asarray(p, dtype=float).reshape(-1, 2) for p in inst.polygons if len(p) >= 6])
    if inst.mask is not None:
        import cv2

        from zoo.raster import rle_to_mask

        m = rle_to_mask(inst.mask).astype(np.uint8)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        # pixel centres are at +0.5 in zoo's convention
        parts = [c.reshape(-1, 2).astype(float) + 0.5 for c in contours if len(c) >= 3]
        return _join_parts(parts)
    x0, y0, x1, y1 = inst.bbox
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def _join_parts(parts: list[np.ndarray]) -> list[float]:
    """Chain polygon parts into one outline with zero-width bridges: walk round each part
    from its entry vertex (the one nearest the previous part's entry), then come back through
    the entry vertices in reverse."""
    if not parts:
        return []
    entries = []
    loops = []
    prev = parts[0][0]
    for p in parts:
        j = int(((p - prev) ** 2).sum(-1).argmin())
        p = np.roll(p, -j, axis=0)
        loops.append(np.vstack([p, p[:1]]))  # round the part, back to its entry
        entries.append(p[0])
        prev = p[0]
    path = np.vstack(loops + [np.asarray(entries[-2::-1]).reshape(-1, 2)])
    return path.reshape(-1).tolist()
