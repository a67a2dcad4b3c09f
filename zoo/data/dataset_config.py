"""``zoo.yaml``: the optional file at a dataset's root that fixes what the annotations cannot say
(class order, keypoint names, skeleton, OKS sigmas, flip order, pixel spacing)."""

from __future__ import annotations

from pathlib import Path

from zoo.data.keypoints import COCO_KEYPOINTS, COCO_SIGMAS, COCO_SKELETON
from zoo.dataset import Dataset
from zoo.errors import DataError, did_you_mean
from zoo.files import read_yaml_mapping


def load_dataset_config(root: Path) -> dict:
    """The optional ``zoo.yaml`` at a dataset's root::

        categories: [rbc, wbc, platelet]     # instance classes, in this order
        classes: [normal, abnormal]          # image-level classes (classify), in this order
        keypoint_names: [head, tail]         # keypoint order (alias: keypoints)
        skeleton: [[head, tail]]             # pairs of names or 0-based indices
        oks_sigmas: [0.05, 0.05]             # one per keypoint (alias: sigmas)
        flip_idx: [0, 1]                     # keypoint index after a horizontal flip
        pixel_spacing: [0.5, 0.5]            # mm per pixel, row then column (or one number)
        masks: {images: img, masks: gt, pair: '(\d+)'}  # image + mask folders (--from masks)
        colors: {tumour: [255, 0, 0]}        # colour masks: each class's colour
        group: '(P\\d+)_'                     # the patient (study, video...) in each image path
        groups: groups.csv                   # or: a CSV image,group (zoo.data.groups)

    Unknown keys are errors (a typo must not silently change the class order)."""
    if root.is_file():
        root = root.parent
    f = root / "zoo.yaml"
    if not f.is_file():
        return {}
    data = read_yaml_mapping(f, "keys (categories, classes, keypoint_names, ...)")
    aliases = {"keypoints": "keypoint_names", "sigmas": "oks_sigmas"}
    known = {"categories", "classes", "keypoint_names", "skeleton", "oks_sigmas", "flip_idx", "pixel_spacing",
             "masks", "colors", "group", "groups"}
    out = {}
    for k, v in data.items():
        k = aliases.get(k, k)
        if k not in known:
            raise DataError(f, f"unknown key '{k}'{did_you_mean(k, known)}; known: {', '.join(sorted(known))}")
        out[k] = v
    for k in ("categories", "classes", "keypoint_names"):
        if k in out and not (isinstance(out[k], list) and all(isinstance(x, str) for x in out[k])):
            raise DataError(f, f"'{k}' must be a list of names")
    names = out.get("keypoint_names") or []
    if "skeleton" in out:
        out["skeleton"] = [_skeleton_pair(pair, names, f) for pair in out["skeleton"] or []]
    for k in ("oks_sigmas", "flip_idx"):
        if k in out and names and len(out[k]) != len(names):
            raise DataError(f, f"'{k}' has {len(out[k])} entries for {len(names)} keypoint_names")
    for k in ("group", "groups"):
        if k in out and not isinstance(out[k], str):
            raise DataError(f, f"'{k}' must be a string (a pattern, or a CSV file's name)")
    if "pixel_spacing" in out:
        out["pixel_spacing"] = _pixel_spacing(out["pixel_spacing"], f)
    out["_file"] = f
    return out


def _skeleton_pair(pair, names: list[str], f: Path) -> tuple[int, int]:
    """A zoo.yaml skeleton entry, two keypoint names or 0-based indices, as indices."""
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
        raise DataError(f, f"skeleton entry {pair!r} is not a pair")
    ij = []
    for p in pair:
        if isinstance(p, str):
            if p not in names:
                raise DataError(f, f"skeleton names '{p}', which is not in keypoint_names")
            ij.append(names.index(p))
        elif isinstance(p, int) and 0 <= p < len(names):
            ij.append(p)
        else:
            raise DataError(f, f"skeleton entry {pair!r} is out of range")
    return ij[0], ij[1]


def _pixel_spacing(value, f: Path) -> tuple[float, float]:
    """zoo.yaml's ``pixel_spacing``: one positive number, or [row, column] (DICOM's order)."""
    values = value if isinstance(value, list) else [value]
    ok = len(values) in (1, 2) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf") for v in values
    )
    if not ok:
        raise DataError(f, f"'pixel_spacing' must be a positive number or [row, column] numbers, got {value!r}")
    return (float(values[0]), float(values[-1]))


def apply_keypoint_meta(dataset: Dataset, config: dict) -> None:
    names = dataset.keypoint_names
    if not names:
        return
    if config.get("skeleton"):
        dataset.skeleton = list(config["skeleton"])
    elif names == COCO_KEYPOINTS:
        dataset.skeleton = list(COCO_SKELETON)
    if config.get("oks_sigmas"):
        dataset.oks_sigmas = [float(s) for s in config["oks_sigmas"]]
    elif names == COCO_KEYPOINTS:
        dataset.oks_sigmas = list(COCO_SIGMAS)
