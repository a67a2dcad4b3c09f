"""Predictions as labelme JSON, and ``zoo predict``: a finished run's model on new images.

The JSON is what a user opens in labelme to correct, then feeds back to ``zoo run``, so it
follows the shapes zoo's labelme reader understands (and the demo uses):

* detect: a ``rectangle`` per detection;
* instance-seg: the mask's outline as ``polygon`` shapes (one per connected part, sharing a
  ``group_id``; holes are not represented, as labelme polygons have none);
* keypoint: a ``rectangle`` plus one ``point`` per keypoint scoring at least
  :data:`KEYPOINT_CONF`, labelled with the keypoint's name, sharing a ``group_id``;
* semantic-seg: one ``polygon`` per connected region of each class;
* classify: the image's ``flags``, the predicted class true.

Each shape's ``description`` holds its score (``"score 0.912"``). Detections scoring below
``conf`` are left out (the run's ``predictions/coco_results.json`` keeps them all). Pixels
are never touched: ``zoo predict`` copies each image into ``--out`` and writes the JSON next
to the copy; a run's ``predictions/labelme/`` points at the original images by relative path.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.atomic import write_json
from zoo.dataset import Dataset, ImageRecord
from zoo.errors import ZooError
from zoo.predictions import ClassPrediction, InstancePredictions, Prediction, SemanticPrediction

LABELME_VERSION = "5.5.0"
#: A predicted keypoint is written when its score reaches this.
KEYPOINT_CONF = 0.5
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
# Outlines are simplified to within this many pixels: fewer vertices to drag when correcting.
_SIMPLIFY_PX = 0.7


def _shape(label: str, points, shape_type: str, group_id=None, description: str = "") -> dict[str, Any]:
    return {
        "label": label,
        "points": [[round(float(x), 2), round(float(y), 2)] for x, y in points],
        "group_id": group_id,
        "description": description,
        "shape_type": shape_type,
        "flags": {},
        "mask": None,
    }


def _outlines(mask) -> list[list[tuple[float, float]]]:
    """External outlines of a boolean mask, in labelme point lists (pixel corners)."""
    import cv2
    import numpy as np

    m = np.ascontiguousarray(mask, dtype=np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        c = cv2.approxPolyDP(c, _SIMPLIFY_PX, True)
        if len(c) < 3:
            continue
        # OpenCV gives pixel indices; +0.5 puts the vertex on the pixel centre (zoo.dataset).
        out.append([(float(x) + 0.5, float(y) + 0.5) for x, y in c[:, 0, :]])
    return out


def _rle_to_mask(rle: dict):
    from pycocotools import mask as mask_utils

    counts = rle["counts"]
    return mask_utils.decode({"size": list(rle["size"]),
                              "counts": counts.encode("ascii") if isinstance(counts, str) else counts})


def prediction_shapes(pred: Prediction, meta: Dataset, conf: float) -> tuple[list[dict], dict[str, bool]]:
    """labelme ``shapes`` and ``flags`` for one canonical prediction."""
    shapes: list[dict] = []
    flags: dict[str, bool] = {}
    if isinstance(pred, InstancePredictions):
        gid = 0
        for d in pred.detections:
            if d.score < conf:
                continue
            gid += 1
            name = meta.categories[d.category]
            desc = f"score {d.score:.3f}"
            if d.mask is not None:
                parts = _outlines(_rle_to_mask(d.mask))
                shapes += [_shape(name, pts, "polygon", gid, desc) for pts in parts]
                if parts:
                    continue
            x0, y0, x1, y1 = d.bbox
            shapes.append(_shape(name, [(x0, y0), (x1, y1)], "rectangle", gid, desc))
            for kname, (x, y, s) in zip(meta.keypoint_names, d.keypoints or []):
                if s >= KEYPOINT_CONF:
                    shapes.append(_shape(kname, [(x, y)], "point", gid, f"score {s:.3f}"))
    elif isinstance(pred, SemanticPrediction):
        import numpy as np

        label_map = np.asarray(pred.label_map)
        gid = 0
        for c, name in enumerate(meta.categories, start=1):
            for pts in _outlines(label_map == c):
                gid += 1
                shapes.append(_shape(name, pts, "polygon", gid))
    elif isinstance(pred, ClassPrediction):
        flags = {c: k == pred.label for k, c in enumerate(meta.classes)}
    return shapes, flags


def labelme_document(record: ImageRecord, image_path: str, shapes, flags, embed: bytes | None = None) -> dict:
    return {
        "version": LABELME_VERSION,
        "flags": flags,
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": base64.b64encode(embed).decode("ascii") if embed is not None else None,
        "imageHeight": record.height,
        "imageWidth": record.width,
    }


def _json_rel(image_id: str) -> Path:
    parts = [p for p in image_id.split("/") if p not in ("", ".", "..")] or ["image"]
    return Path(*parts[:-1], parts[-1] + ".json")


def write_labelme_predictions(out: Path, task, images: Dataset, preds: Sequence[Prediction], *,
                              conf: float, copy_images: bool) -> list[Path]:
    """One labelme JSON per prediction under ``out`` (mirroring image ids).

    ``copy_images``: copy each image next to its JSON (``zoo predict``); otherwise the JSON
    points at the original file by relative path (a run's ``predictions/labelme``).
    """
    from zoo.dataset import embedded_image_bytes

    meta = images.meta()
    written = []
    for record, pred in zip(images.images, preds):
        json_path = Path(out) / _json_rel(record.id)
        shapes, flags = prediction_shapes(pred, meta, conf)
        embed = None
        if record.file is not None and copy_images:
            copy = json_path.with_name(json_path.stem + record.file.suffix)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(record.file, copy)
            image_path = copy.name
        elif record.file is not None:
            image_path = Path(os.path.relpath(Path(record.file).resolve(), json_path.parent.resolve())).as_posix()
        else:  # pixels embedded in the source labelme JSON: embed them again
            embed = embedded_image_bytes(record.embedded)
            image_path = Path(record.id).name + record.suffix
        written.append(write_json(json_path, labelme_document(record, image_path, shapes, flags, embed)))
    return written


# -- zoo predict ------------------------------------------------------------------------------


def _collect_images(inputs: Sequence[Path]) -> list[tuple[Path, str]]:
    """(file, record id) for every image named or found (recursively) in a named folder."""
    found: list[tuple[Path, str]] = []
    for p in map(Path, inputs):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ZooError(f"{p}: no images in this folder ({', '.join(sorted(IMAGE_SUFFIXES))})")
            found += [(f, f.relative_to(p).with_suffix("").as_posix()) for f in files]
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise ZooError(f"{p}: not an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
            found.append((p, p.stem))
        else:
            raise ZooError(f"{p}: no such file or folder")
    seen: dict[str, Path] = {}
    for f, rid in found:
        if rid in seen:
            raise ZooError(f"{f} and {seen[rid]} would both be written as {rid}: predict them in separate runs")
        seen[rid] = f
    return found


def _check_out(out: Path, inputs: Sequence[Path], files: list[tuple[Path, str]]) -> None:
    """Never write into the user's input: --out may not be, or be inside, an input folder."""
    o = out.resolve()
    for p in map(Path, inputs):
        root = p.resolve() if p.is_dir() else p.resolve().parent
        if o == root or root in o.parents:
            raise ZooError(f"--out {out} is inside the input {p}; choose a folder outside it")
    for f, _ in files:
        if f.resolve().parent == o:
            raise ZooError(f"--out {out} holds the input image {f}; choose another folder")


def _record(path: Path, rid: str) -> ImageRecord:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            w, h = ImageOps.exif_transpose(img).size
    except (UnidentifiedImageError, OSError) as e:
        raise ZooError(f"{path}: cannot read this image ({e})") from None
    return ImageRecord(id=rid, width=w, height=h, file=path)


def load_run_meta(run_dir: Path) -> Dataset:
    """The vocabularies a run was trained with (data/meta.json)."""
    from zoo.atomic import read_json

    path = Path(run_dir) / "data" / "meta.json"
    if not path.is_file():
        raise ZooError(f"{path}: missing; this run folder is incomplete")
    m = read_json(path)
    return Dataset(
        categories=m.get("categories", []), classes=m.get("classes", []),
        keypoint_names=m.get("keypoint_names", []),
        skeleton=[tuple(s) for s in m.get("skeleton", [])], oks_sigmas=m.get("oks_sigmas"),
    )


def load_backend(run_dir: Path, device: str = "auto", registry=None):
    """The trained backend of a finished run, ready to predict, and its task and meta."""
    import yaml

    from zoo.backend import RunContext
    from zoo.config import resolve_config
    from zoo.devices import resolve_device
    from zoo.registry import get_registry
    from zoo.runfolder import require_run
    from zoo.tasks import get_task

    run_dir = Path(run_dir)
    manifest = require_run(run_dir)
    task = get_task(manifest["task"])
    spec = (registry or get_registry()).backend(manifest["backend"], task.name)
    cls = spec.load()
    saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    dev = resolve_device(device if device != "auto" else saved.get("device", "auto"))
    config = resolve_config(cls.Config, backend=spec.name, task=task.name, base=saved)
    config = config.model_copy(update={"device": dev})
    meta = load_run_meta(run_dir)
    import logging

    ctx = RunContext(run_dir=run_dir.resolve(), device=dev, log=logging.getLogger("zoo"))
    return cls.load(task, meta, config, ctx), task, meta, spec.name


def predict_to_labelme(run_dir: Path, images: Sequence[Path], out: Path, *, conf: float = 0.25,
                       device: str = "auto", registry=None, quiet: bool = False) -> list[Path]:
    """``zoo predict``: copies of ``images`` in ``out``, each with its labelme JSON."""
    from zoo.progress import track
    from zoo.run import check_predictions

    if not 0.0 <= conf <= 1.0:
        raise ZooError(f"--conf {conf}: expected a score between 0 and 1")
    out = Path(out)
    files = _collect_images(images)
    _check_out(out, images, files)
    backend, task, meta, name = load_backend(run_dir, device, registry)
    records = [_record(f, rid) for f, rid in files]
    preds = list(track(backend.predict(records), "predicting", total=len(records)))
    check_predictions(task, name, records, preds, meta)
    written = write_labelme_predictions(out, task, Dataset(**{**_vocab(meta), "images": records}), preds,
                                        conf=conf, copy_images=True)
    if not quiet:
        from rich.console import Console

        n = sum(len(p.detections) for p in preds if isinstance(p, InstancePredictions))
        extra = f", {n} detection(s) before the --conf {conf:g} cut" if n else ""
        Console(stderr=True).print(f"wrote {len(written)} labelme file(s) to {out}{extra}; open them with `labelme {out}`")
    return written


def _vocab(meta: Dataset) -> dict[str, Any]:
    return {"categories": meta.categories, "classes": meta.classes, "keypoint_names": meta.keypoint_names,
            "skeleton": meta.skeleton, "oks_sigmas": meta.oks_sigmas}
