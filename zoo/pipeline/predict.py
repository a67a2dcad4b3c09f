"""``zoo predict``: a finished run's model on new images, as files to correct (labelme JSON).

The files are those of the output format that writes one image's predictions
(``WriterSpec.predictions``, found through the registry; zoo's is labelme's: boxes ->
rectangles, masks -> polygons, keypoints -> points sharing the object's group, semantic
regions -> polygons, classify -> flags, each shape carrying its score), so a corrected file
reads back through the reader of that format as training data.

Pixels are never touched: ``zoo predict`` copies each image into ``--out`` and writes the
JSON next to the copy, and refuses an ``--out`` inside an input folder. A run's own
``predictions/labelme/`` points at the original images by relative path instead.
Detections scoring below ``--conf`` are left out of the JSON (a run's
``predictions/coco_results.json`` keeps them all).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from zoo.atomic import write_bytes
from zoo.backend import RunContext, Unsupported
from zoo.config import resolve_config
from zoo.dataset import Dataset, ImageRecord, embedded_image_bytes, id_path
from zoo.errors import ZooError
from zoo.files import IMAGE_SUFFIXES, is_dicom_head, open_image, read_head
from zoo.pipeline.artifacts import checked_onnx, winner
from zoo.pipeline.runfolder import RunFolder
from zoo.pixels import decode, parse_intensity
from zoo.predictions import InstancePredictions, Prediction, check_predictions
from zoo.progress import LogReporter, Reporter
from zoo.specs import WriterSpec
from zoo.tasks import get_task
from zoo.training.devices import resolve_device

#: A name holding one of these is a pattern (``'new/*.jpg'``, ``'scans/**/*.png'``) when no
#: file of that name exists: quoted, it reaches zoo unexpanded (and Windows shells never expand).
GLOB_CHARS = "*?["


@dataclass
class PredictResult:
    """What ``zoo predict`` wrote."""

    out: Path
    written: list[Path]  # the files to correct (labelme JSON), one per image
    detections: int  # before the --conf cut (instance tasks; 0 otherwise)
    conf: float


def prediction_writers(registry=None) -> list[WriterSpec]:
    """The output formats that write one image's predictions (``WriterSpec.predictions``)."""
    from zoo.registry import get_registry

    return [w for w in (registry or get_registry()).writers.values() if w.predictions]


def prediction_writer(registry=None, to: str | None = None) -> WriterSpec:
    """The output format ``to`` (it must write predictions), else the one installed that
    does; several: a refusal naming the choice, never a guess."""
    if to is not None:
        from zoo.registry import get_registry

        spec = (registry or get_registry()).writer(to)
        if not spec.predictions:
            raise ZooError(f"--to {to}: that format does not write predictions; "
                           f"these do: {', '.join(w.name for w in prediction_writers(registry)) or 'none'}")
        return spec
    able = prediction_writers(registry)
    if len(able) != 1:
        raise ZooError("no installed output format writes predictions" if not able else
                       f"several output formats write predictions ({', '.join(w.name for w in able)}): "
                       f"pass --to {able[0].name} (or another)")
    return able[0]


def write_prediction_files(out: Path, images: Dataset, preds: Sequence[Prediction], *, conf: float,
                           copy_images: bool, registry=None, writer: WriterSpec | None = None) -> list[Path]:
    """One file per prediction under ``out`` in ``writer``'s format (default: the one that
    writes predictions, :func:`prediction_writer`), mirroring the image ids.

    ``copy_images``: copy each image next to its JSON (``zoo predict``); otherwise the JSON
    points at the original file by relative path. Pixels embedded in a source labelme JSON
    (no image file) are always written out as a file beside the new JSON.
    """
    writer = writer or prediction_writer(registry)
    write_prediction = writer.load_predictions()
    meta = images.meta()
    written = []
    for record, pred in zip(images.images, preds):
        json_path = Path(out) / id_path(record.id, writer.predictions_suffix)  # the file to correct
        image_path = None
        if record.file is None:
            image_path = write_bytes(json_path.with_suffix(record.suffix), embedded_image_bytes(record.embedded))
        elif copy_images:
            image_path = json_path.with_suffix(record.file.suffix)
            image_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(record.file, image_path)
        written.append(write_prediction(pred, meta, record, json_path, image_path=image_path, min_score=conf))
    return written


# -- zoo predict ------------------------------------------------------------------------------


def _collect_images(inputs: Sequence[Path]) -> list[tuple[Path, str]]:
    """(file, record id) for every image named, matched by a glob, or found (recursively) in a
    named folder. Only the files' suffixes are looked at: nothing is read as annotation here."""
    found: list[tuple[Path, str]] = []
    for p in map(Path, inputs):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ZooError(f"{p}: no images in this folder ({', '.join(sorted(IMAGE_SUFFIXES))})")
            found += [(f, f.relative_to(p).with_suffix("").as_posix()) for f in files]
        elif p.is_file():
            found.append((_image_file(p), p.stem))
        elif any(c in str(p) for c in GLOB_CHARS):
            found += [(f, f.stem) for f in _glob_images(p)]
        else:
            raise ZooError(f"{p}: no such file or folder")
    seen: dict[str, Path] = {}
    for f, rid in found:
        if rid in seen:
            raise ZooError(f"{f} and {seen[rid]} would both be written as {rid}: predict them in separate runs")
        seen[rid] = f
    return found


def _image_file(p: Path) -> Path:
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        raise ZooError(f"{p}: not an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return p


def _glob_images(pattern: Path) -> list[Path]:
    """The image files a glob matches (``**`` spans folders), sorted; a ZooError when none."""
    import glob

    matches = sorted(Path(m) for m in glob.glob(str(pattern), recursive=True))
    images = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise ZooError(f"{pattern}: matches no image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def _check_out(out: Path, inputs: Sequence[Path], files: Sequence[tuple[Path, str]] = ()) -> None:
    """Never write into the user's input: --out may not be, or be inside, a folder named as
    input or one holding an input image (``files``: those :func:`_collect_images` found)."""
    o = out.resolve()
    roots = {p.resolve() for p in map(Path, inputs) if p.is_dir()} | {Path(f).resolve().parent for f, _ in files}
    for root in sorted(roots):
        if o == root or root in o.parents:
            raise ZooError(f"--out {out} is inside the input {root}; choose a folder outside it")


def _record(path: Path, rid: str) -> ImageRecord:
    w, h = _checked_image_size(path)
    return ImageRecord(id=rid, width=w, height=h, file=path)


def _checked_image_size(path: Path) -> tuple[int, int]:
    """(width, height) after EXIF orientation of an image decoded here once, as the readers
    take an image: within PIL's bomb limit (2 x ``Image.MAX_IMAGE_PIXELS``, checked on the
    header, before a pixel is decoded), and whole. A bad file is one line naming it, never
    a framework's traceback later (a 0-byte ``.jpg`` sent ultralytics looking for HEIF)."""
    if is_dicom_head(read_head(path, 132)):
        h, w = decode(path).array.shape[:2]  # decoded whole: a truncated file fails here, in one line
        return w, h
    with open_image(path) as img:
        w, h = img.size
        img.load()  # a truncated file fails here
        orientation = img.getexif().get(0x0112, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def recorded_intensity(run_dir: Path):
    """The intensity rule the run trained with (its config.yaml): new images are decoded as
    its training images were."""
    return parse_intensity(RunFolder(run_dir).read_config().get("intensity", "auto"))[1]


def load_backend(run_dir: Path, device: str = "auto", registry=None, onnx: Path | None = None):
    """The trained backend of a finished run, ready to predict, and its task, meta and name.
    The checkpoints must be the ones the run wrote (their sha256 is in its manifest).
    ``onnx``: the run's exported graph instead, run by onnxruntime (``Backend.load_onnx``)."""
    import logging

    from zoo.registry import get_registry

    folder = RunFolder(run_dir)
    manifest = folder.trained_manifest()
    task = get_task(manifest.task)
    spec = (registry or get_registry()).backend(manifest.backend, task.name)
    cls = spec.load()
    saved = folder.read_config()
    dev = resolve_device(device if device != "auto" else saved.get("device", "auto"))
    config = resolve_config(cls.Config, backend=spec.name, task=task.name, base=saved, spec=spec)
    config = config.model_copy(update={"device": dev})
    meta = folder.read_meta()
    ledger = folder.ledger(manifest)
    ledger.verify_all("checkpoint")
    ctx = RunContext(run_dir=folder.path.resolve(), device=dev, log=logging.getLogger("zoo"), ledger=ledger)
    if onnx is not None:
        return _onnx_backend(cls, spec.name, task, meta, config, ctx, onnx), task, meta, spec.name
    return cls.load(task, meta, config, ctx), task, meta, spec.name


def _onnx_backend(cls, name: str, task, meta, config, ctx, onnx: Path):
    try:
        return cls.load_onnx(task, meta, config, ctx, onnx)
    except Unsupported as e:
        raise ZooError(f"{name} cannot predict through onnxruntime: {e}") from None


def _engine_of(run_dir: Path, engine: str, onnx_dir: Path | None, reporter: Reporter) -> tuple[Path, Path | None]:
    """The run that predicts (a compare folder's winner, said) and its checked ONNX file under
    ``--engine onnx`` (None for torch)."""
    if engine not in ("torch", "onnx"):
        raise ZooError(f"--engine {engine}: expected torch or onnx")
    target = winner(run_dir)
    if target.why:
        reporter.say(target.why)
    if target.is_ensemble:
        raise ZooError(f"{run_dir}: the winner is a fold ensemble; predict with it: zoo predict --run {run_dir} "
                       f"--backend {target.backend} --ensemble{' --engine onnx' if engine == 'onnx' else ''} "
                       "IMAGES --out DIR")
    if engine == "torch":
        return target.run, None
    return target.run, checked_onnx(onnx_dir if onnx_dir is not None else target.run / "export" / "onnx", target.run)


def predict_to_labelme(run_dir: Path, images: Sequence[Path], out: Path, *, conf: float = 0.25,
                       device: str = "auto", registry=None, reporter: Reporter | None = None,
                       engine: str = "torch", onnx_dir: Path | None = None, model=None,
                       to: str | None = None) -> PredictResult:
    """``zoo predict``: copies of ``images`` in ``out``, each with its file to correct, in the
    format ``to`` (default: the one installed that writes predictions, labelme).
    ``engine="onnx"``: the run's ONNX export (``onnx_dir``, default ``RUN/export/onnx``) run by
    onnxruntime; ``run_dir`` may be a ``zoo compare`` folder (its winner predicts). ``model``:
    ``(backend, task, meta, name)`` loaded already (a fold ensemble, zoo.pipeline.ensemble)."""
    if not 0.0 <= conf <= 1.0:
        raise ZooError(f"--conf {conf}: expected a score between 0 and 1")
    reporter = reporter or LogReporter()
    writer = prediction_writer(registry, to)  # an ambiguous format fails before any work
    out = Path(out)
    files = _collect_images(images)
    _check_out(out, images, files)
    if model is not None:
        backend, task, meta, name = model
        rule = None  # each member applies its own run's intensity rule
    else:
        run_dir, onnx = _engine_of(run_dir, engine, onnx_dir, reporter)
        backend, task, meta, name = load_backend(run_dir, device, registry, onnx=onnx)
        rule = recorded_intensity(run_dir)
    records = [replace(_record(f, rid), intensity=rule) for f, rid in files]
    preds = list(reporter.track(backend.predict(records), "predicting", total=len(records)))
    check_predictions(task, name, records, preds, meta)
    written = write_prediction_files(out, replace(meta, images=records), preds, conf=conf, copy_images=True,
                                     writer=writer)
    detections = sum(len(p.detections) for p in preds if isinstance(p, InstancePredictions))
    return PredictResult(out, written, detections, conf)

