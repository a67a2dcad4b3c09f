"""Turning what a reader collected (names as strings) into a Dataset (names as indices).

Readers put the label *name* in ``Instance.category`` (``-1`` for "ignored for every
category"), a ``{name: (x, y, v)}`` dict in ``Instance.keypoints`` and class names in
``ImageRecord.labels``; :func:`finish` fixes the vocabularies (``--labels`` file, else
zoo.yaml, else sorted names) and replaces names by positions in one pass.
"""

from __future__ import annotations

from pathlib import Path

from zoo.data.dataset_config import apply_keypoint_meta, load_dataset_config
from zoo.data.keypoints import keypoint_vocabulary
from zoo.data.labels import EVERY_LABEL, LabelList, has_control_char, order_vocabulary
from zoo.dataset import Dataset, ImageRecord, Problem, Source
from zoo.errors import DataError


def warn(dataset_warnings: list[Problem], file, reason: str, shape: int | None = None) -> None:
    dataset_warnings.append(Problem(Source(str(file), shape), reason))


def finish(
    records: list[ImageRecord],
    warnings: list[Problem],
    *,
    root: Path,
    fmt: str,
    labels: str | Path | LabelList | None = None,
    categories: list[str] | None = None,
    classes: list[str] | None = None,
    class_names_found: set[str] | None = None,
    splits: dict[str, list[str]] | None = None,
    keypoint_names: list[str] | None = None,
) -> Dataset:
    """A Dataset from records holding names. ``categories``/``classes``: an order the
    format itself fixes (COCO's category list, YOLO's classes.txt, class folders)."""
    if not records:
        raise DataError(root, f"holds no image zoo could read ({fmt})"
                        + (f" (first problem: {warnings[0]})" if warnings else ""))
    config = load_dataset_config(root)
    if labels is EVERY_LABEL:
        labels, config = None, {k: v for k, v in config.items() if k not in ("categories", "classes")}
    label_list = labels if isinstance(labels, LabelList) or labels is None else LabelList.read(labels)

    found_cats: set[str] = set()
    found_kpts: set[str] = set()
    found_classes: set[str] = set(class_names_found or ())
    for rec in records:
        for inst in rec.instances:
            if isinstance(inst.category, str):
                found_cats.add(inst.category)
            if isinstance(inst.keypoints, dict):
                found_kpts.update(k for k in inst.keypoints if isinstance(k, str))
        found_classes.update(rec.labels)

    # --labels names the instance categories, or the image classes of a folder without shapes
    given_cats = categories
    given_classes = classes
    source_of_order = "the dataset"
    if label_list is not None:
        if found_cats or not found_classes:
            given_cats, source_of_order = label_list.names, str(label_list.file)
        else:
            given_classes, source_of_order = label_list.names, str(label_list.file)
    else:
        if config.get("categories") is not None:
            given_cats, source_of_order = config["categories"], str(config["_file"])
        if config.get("classes") is not None:
            given_classes, source_of_order = config["classes"], str(config["_file"])
    cat_names = writable_names(order_vocabulary(found_cats, given_cats), warnings, source_of_order)
    class_names = writable_names(order_vocabulary(found_classes, given_classes), warnings, source_of_order)
    kpt_names = list(keypoint_names) if keypoint_names is not None else keypoint_vocabulary(found_kpts, config)

    cat_index = {n: i for i, n in enumerate(cat_names)}
    class_index = {n: i for i, n in enumerate(class_names)}
    kpt_index = {n: i for i, n in enumerate(kpt_names)}
    unknown_cats: dict[str, int] = {}
    unknown_classes: dict[str, int] = {}
    for rec in records:
        kept = []
        for inst in rec.instances:
            c = inst.category
            if isinstance(c, str):
                if c not in cat_index:
                    unknown_cats[c] = unknown_cats.get(c, 0) + 1
                    continue
                inst.category = cat_index[c]
            if isinstance(inst.keypoints, dict):
                kp = [(0.0, 0.0, 0)] * len(kpt_names)
                for name, xyv in inst.keypoints.items():
                    k = name if isinstance(name, int) else kpt_index.get(name)
                    if k is not None and 0 <= k < len(kp):
                        kp[k] = xyv
                inst.keypoints = kp
            kept.append(inst)
        rec.instances = kept
        new_labels = []
        for name in rec.labels:
            if isinstance(name, str):
                if name not in class_index:
                    unknown_classes[name] = unknown_classes.get(name, 0) + 1
                    continue
                new_labels.append(class_index[name])
            else:
                new_labels.append(name)
        rec.labels = new_labels
    for name, n in sorted(unknown_cats.items()):
        warn(warnings, source_of_order, f"label '{name}' is not in the label list; its {n} shape(s) skipped")
    for name, n in sorted(unknown_classes.items()):
        warn(warnings, source_of_order, f"class '{name}' is not in the class list; skipped on {n} image(s)")
    if kpt_names and config.get("keypoint_names"):
        extra = sorted(found_kpts - set(kpt_names))
        if extra:
            warn(warnings, config["_file"], f"point labels {extra} are not in keypoint_names; skipped")

    ds = Dataset(
        categories=cat_names,
        images=records,
        classes=class_names,
        keypoint_names=kpt_names,
        root=root,
        format=fmt,
        warnings=warnings,
        pixel_spacing=config.get("pixel_spacing"),
    )
    apply_keypoint_meta(ds, config)
    ds.splits = splits if splits is not None else folder_splits(records)
    return ds


def writable_names(names: list[str], warnings: list[Problem], where: str) -> list[str]:
    """The vocabulary without names that a line-per-name file cannot hold (a line break
    would shift every class index after it) and without repeats (the first kept). Shapes
    with a dropped name are then skipped, with the 'not in the label list' warning."""
    out, seen = [], set()
    for n in names:
        if has_control_char(n):
            warn(warnings, where, f"label {n!r} holds a line break or control character; its shapes are skipped")
        elif n not in seen:
            seen.add(n)
            out.append(n)
    return out


SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def folder_splits(records: list[ImageRecord]) -> dict[str, list[str]]:
    """train/ val/ test/ top folders as splits, when every image lies in one of them."""
    out: dict[str, list[str]] = {}
    for rec in records:
        top = rec.id.split("/", 1)[0] if "/" in rec.id else ""
        name = SPLIT_FOLDERS.get(top.lower())
        if name is None:
            return {}
        out.setdefault(name, []).append(rec.id)
    return out
