"""``zoo eval``: score a predictions file against ground truth with the shared evaluator.

PRED by task:

* detect, instance-seg, keypoint: a COCO results JSON (a list of ``{image_id, category_id,
  bbox, score[, segmentation][, keypoints]}``). ``image_id`` is matched to the ground truth
  by the GT COCO file's own ids when GT is a COCO JSON, else by zoo's numbering (1..N in
  the order the reader returns images, what ``zoo run`` writes in
  ``predictions/coco_results.json``); a string ``image_id`` may also name the image itself.
  ``category_id`` is the category index + 1.
* semantic-seg: a folder of single-channel PNG label maps (background 0, category i at i+1),
  one per image, named like the image (``<image id>.png``; the base name alone also works).
* classify: a CSV ``image,label`` (header optional); image is the image id, its file name or
  base name; label is a class name or its index.
"""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath
from typing import Any

from zoo.errors import ZooError

INSTANCE_TASKS = ("detect", "instance-seg", "keypoint")


def evaluate_files(task: str, gt: Path, pred: Path, out: Path, fmt: str = "auto",
                   labels: Path | None = None, plots: Path | None = None) -> dict[str, Any]:
    """Read GT and PRED, score them, write ``out`` (metrics.json), print a table; the metrics."""
    from zoo.atomic import write_json
    from zoo.evaluation import evaluate
    from zoo.data.reading import read_dataset
    from zoo.tasks import get_task

    t = get_task(task)
    gt, pred = Path(gt), Path(pred)
    if not pred.exists():
        raise ZooError(f"{pred}: no such file or folder")
    dataset = read_dataset(gt, fmt, labels)
    t.check(dataset)
    if t.name in INSTANCE_TASKS:
        preds = read_coco_results(pred, dataset, gt)
    elif t.name == "semantic-seg":
        preds = read_mask_folder(pred, dataset)
    else:
        preds = read_label_csv(pred, dataset)
    metrics = evaluate(t, dataset, preds, plots_dir=plots)
    metrics = {**metrics, "ground_truth": str(gt), "predictions": str(pred)}
    write_json(out, metrics)
    print_metrics(metrics, out)
    return metrics


# -- reading predictions ---------------------------------------------------------------------


def read_coco_results(path: Path, dataset, gt_path: Path | None = None) -> list:
    import orjson

    from zoo.evaluation.results import coco_results_to_predictions

    if path.is_dir():
        raise ZooError(f"{path}: expected a COCO results JSON file, got a folder")
    try:
        results = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise ZooError(f"{path}: not valid JSON ({e}); predictions for this task are a COCO results JSON") from None
    if isinstance(results, dict) and isinstance(results.get("annotations"), list):
        results = results["annotations"]  # a whole COCO file given as results: use its annotations
    ids = coco_image_ids(gt_path, dataset) if gt_path is not None else None
    return coco_results_to_predictions(results, dataset, ids, source=str(path))


def coco_image_ids(gt_path: Path, dataset) -> dict[int, str] | None:
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


def read_mask_folder(folder: Path, dataset) -> list:
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
        try:
            img = Image.open(path)
            img.load()
        except OSError as e:
            raise ZooError(f"{path}: not a readable PNG ({e})") from None
        if img.mode not in ("L", "P", "I", "I;16", "1"):
            raise ZooError(f"{path}: a label map must be single-channel (L or P mode), got {img.mode}")
        arr = np.asarray(img)
        if arr.shape != (r.height, r.width):
            raise ZooError(f"{path}: label map is {arr.shape[1]}x{arr.shape[0]}, the image is {r.width}x{r.height}")
        preds.append(SemanticPrediction(r.id, arr))
    return preds


def read_label_csv(path: Path, dataset) -> list:
    from zoo.predictions import ClassPrediction

    if path.is_dir():
        raise ZooError(f"{path}: expected a CSV file 'image,label' for classify, got a folder")
    names = {n: k for k, n in enumerate(dataset.classes)}
    find = _name_index(dataset)
    preds = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < 2:
                raise ZooError(f"{path}: line {line}: expected 'image,label', got {','.join(row)!r}")
            image, label = row[0].strip(), row[1].strip()
            if line == 1 and image.lower() in ("image", "image_id", "file", "filename", "file_name"):
                continue  # header
            rid = find(image)
            if rid is None:
                raise ZooError(f"{path}: line {line}: image {image!r} is not in the ground truth")
            if label in names:
                k = names[label]
            elif label.isdigit() and int(label) < len(names):
                k = int(label)
            else:
                from zoo.errors import did_you_mean

                raise ZooError(f"{path}: line {line}: unknown class {label!r}{did_you_mean(label, names)}")
            preds.append(ClassPrediction(rid, k))
    if not preds:
        raise ZooError(f"{path}: no predictions in the file")
    return preds


# -- the table ------------------------------------------------------------------------------


def print_metrics(metrics: dict[str, Any], out: Path | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from zoo.pipeline.report import fmt_ci

    console = Console()
    main = metrics.get("main")
    scalars = {k: v for k, v in metrics.items() if isinstance(v, float) or (v is None and k[:1].isupper())}
    title = f"{metrics.get('task', '')}: {metrics.get('images', '?')} images"
    table = Table(title=title, show_header=True, min_width=36)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in scalars.items():
        style = "bold" if k == main else None
        table.add_row(k, fmt_ci(metrics, k, 4), style=style)  # "0.7570 (0.70–0.81)" 
    for k in ("AP", "AP50", "AP75"):  # masks / keypoints: the box AP of the same detections
        if isinstance(metrics.get("bbox"), dict):
            table.add_row(f"box {k}", _fmt(metrics["bbox"].get(k)), style="dim")
    console.print(table)
    per_class = metrics.get("per_class")
    if per_class:
        first = next(iter(per_class.values()))
        cols = [c for c in first if c in ("AP", "AP50", "IoU", "Dice", "precision", "recall", "f1")]
        count = next((c for c in ("instances", "pixels", "support") if c in first), None)
        pt = Table(title="per class", show_header=True)
        pt.add_column("class")
        for c in cols + ([count] if count else []):
            pt.add_column(c, justify="right")
        for name, row in per_class.items():
            pt.add_row(name, *[_fmt(row.get(c)) for c in cols], *([str(row.get(count))] if count else []))
        console.print(pt)
    if out is not None:
        console.print(f"metrics written to {out}")


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)
