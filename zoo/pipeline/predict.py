"""``zoo predict``: a finished run's model on new images, as labelme JSON to correct.

The JSON itself is the adapters' (:func:`zoo.adapters.labelme_out.prediction_to_labelme`:
boxes -> rectangles, masks -> polygons, keypoints -> points sharing the object's group,
semantic regions -> polygons, classify -> flags, each shape carrying its score), so a
corrected file reads back through zoo's labelme reader as training data.

Pixels are never touched: ``zoo predict`` copies each image into ``--out`` and writes the
JSON next to the copy, and refuses an ``--out`` inside an input folder. A run's own
``predictions/labelme/`` points at the original images by relative path instead.
Detections scoring below ``--conf`` are left out of the JSON (a run's
``predictions/coco_results.json`` keeps them all).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.dataset import Dataset, ImageRecord, id_path
from zoo.errors import ZooError
from zoo.predictions import InstancePredictions, Prediction

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def write_labelme_predictions(out: Path, images: Dataset, preds: Sequence[Prediction], *,
                              conf: float, copy_images: bool) -> list[Path]:
    """One labelme JSON per prediction under ``out``, mirroring the image ids.

    ``copy_images``: copy each image next to its JSON (``zoo predict``); otherwise the JSON
    points at the original file by relative path. Pixels embedded in a source labelme JSON
    (no image file) are always written out as a file beside the new JSON.
    """
    from zoo.adapters.labelme_out import prediction_to_labelme
    from zoo.atomic import write_bytes
    from zoo.dataset import embedded_image_bytes

    meta = images.meta()
    written = []
    for record, pred in zip(images.images, preds):
        json_path = Path(out) / id_path(record.id, ".json")
        image_path = None
        if record.file is None:
            image_path = write_bytes(json_path.with_suffix(record.suffix), embedded_image_bytes(record.embedded))
        elif copy_images:
            image_path = json_path.with_suffix(record.file.suffix)
            image_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(record.file, image_path)
        written.append(prediction_to_labelme(pred, meta, record, json_path, image_path=image_path, min_score=conf))
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


def _check_out(out: Path, inputs: Sequence[Path]) -> None:
    """Never write into the user's input: --out may not be, or be inside, a folder named as
    input or one holding an input image."""
    o = out.resolve()
    for p in map(Path, inputs):
        root = p.resolve() if p.is_dir() else p.resolve().parent
        if o == root or root in o.parents:
            raise ZooError(f"--out {out} is inside the input {root}; choose a folder outside it")


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
        pixel_spacing=tuple(m["pixel_spacing"]) if m.get("pixel_spacing") else None,
    )


def load_backend(run_dir: Path, device: str = "auto", registry=None):
    """The trained backend of a finished run, ready to predict, and its task and meta."""
    import yaml

    from zoo.backend import RunContext
    from zoo.config import resolve_config
    from zoo.training.devices import resolve_device
    from zoo.registry import get_registry
    from zoo.pipeline.runfolder import checkpoint_ledger, require_run
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

    # the checkpoints must be the ones the run wrote (sha256 in its manifest)
    ledger = checkpoint_ledger(run_dir, manifest)
    if not ledger.tracked:
        logging.getLogger("zoo").warning("%s was written before zoo recorded checkpoint checksums; "
                                         "they are not verified", run_dir)
    ledger.verify_all("checkpoint")
    ctx = RunContext(run_dir=run_dir.resolve(), device=dev, log=logging.getLogger("zoo"), ledger=ledger)
    return cls.load(task, meta, config, ctx), task, meta, spec.name


def predict_to_labelme(run_dir: Path, images: Sequence[Path], out: Path, *, conf: float = 0.25,
                       device: str = "auto", registry=None, quiet: bool = False) -> list[Path]:
    """``zoo predict``: copies of ``images`` in ``out``, each with its labelme JSON."""
    from zoo.progress import track
    from zoo.predictions import check_predictions

    if not 0.0 <= conf <= 1.0:
        raise ZooError(f"--conf {conf}: expected a score between 0 and 1")
    out = Path(out)
    files = _collect_images(images)
    _check_out(out, images)
    backend, task, meta, name = load_backend(run_dir, device, registry)
    records = [_record(f, rid) for f, rid in files]
    preds = list(track(backend.predict(records), "predicting", total=len(records)))
    check_predictions(task, name, records, preds, meta)
    written = write_labelme_predictions(out, Dataset(**{**_vocab(meta), "images": records}), preds,
                                        conf=conf, copy_images=True)
    if not quiet:
        from rich.console import Console

        n = sum(len(p.detections) for p in preds if isinstance(p, InstancePredictions))
        extra = f", {n} detection(s) before the --conf {conf:g} cut" if n else ""
        Console(stderr=True).print(f"wrote {len(written)} labelme file(s) to {out}{extra}; open them with `labelme {out}`")
    return written


def _vocab(meta: Dataset) -> dict[str, Any]:
    return {"categories": meta.categories, "classes": meta.classes, "keypoint_names": meta.keypoint_names,
            "skeleton": meta.skeleton, "oks_sigmas": meta.oks_sigmas, "pixel_spacing": meta.pixel_spacing}
