"""Canonical train / val datasets -> the folder layout ultralytics trains from.

The writing itself is zoo's YOLO writer (the ``yolo`` writer of the registry: first-party
or not, a plugin reaches another only through it); this module only adds what ultralytics
in particular needs:

* one dataset with the run's own ``train`` / ``val`` split (never the source folder's);
* coordinates inside the image: ultralytics drops a *whole image* whose label line holds a
  value past 1.01 of the image size, so boxes, polygon vertices and keypoints are pulled onto
  the border first (a keypoint outside the image becomes "not labelled");
* for classify, the mapping between ultralytics' outputs (class folders, sorted by name)
  and zoo's class indices.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from zoo.dataset import Dataset, ImageRecord, Instance

# What ultralytics calls each task, and the suffix of its model files.
# semantic-seg trains the instance-seg model and paints its masks (see translate.to_label_map).
FRAMEWORK_TASK = {
    "detect": "detect",
    "instance-seg": "segment",
    "semantic-seg": "segment",
    "keypoint": "pose",
    "classify": "classify",
}
MODEL_SUFFIX = {"detect": "", "instance-seg": "-seg", "semantic-seg": "-seg", "keypoint": "-pose", "classify": "-cls"}


def class_folder_names(classes: list[str]) -> list[str]:
    """The folder the YOLO writer gives each image class (index = zoo's class index)."""
    from zoo.data.safe_paths import unique_safe_names

    return unique_safe_names(classes)


def write_dataset(task: str, train: Dataset, val: Dataset, out: Path) -> Path:
    """Write ``train`` and ``val`` for ultralytics under ``out``; return what to pass as
    ``data=`` (a YAML file, or the classify root folder)."""
    from zoo.registry import get_registry

    write = get_registry().writer("yolo").load()
    out = Path(out).resolve()
    if out.exists():
        shutil.rmtree(out)  # scratch: always rebuilt from the canonical data
    both = replace(
        train,
        images=[_inside(r) for r in train.images] + [_inside(r) for r in val.images],
        splits={"train": [r.id for r in train.images], "val": [r.id for r in val.images]},
        warnings=[],
    )
    data = write(both, out, task=FRAMEWORK_TASK[task])
    if task == "classify":
        # ultralytics names a model's outputs after the class folders of train/; a class with
        # no training image would otherwise be missing from the model altogether.
        for name in class_folder_names(train.classes):
            (out / "train" / name).mkdir(parents=True, exist_ok=True)
            (out / "val" / name).mkdir(parents=True, exist_ok=True)
    return Path(data)


def _inside(rec: ImageRecord) -> ImageRecord:
    """``rec`` with every coordinate on or inside the image border."""
    w, h = float(rec.width), float(rec.height)

    def cx(v: float) -> float:
        return min(max(v, 0.0), w)

    def cy(v: float) -> float:
        return min(max(v, 0.0), h)

    def fix(inst: Instance) -> Instance:
        x0, y0, x1, y1 = inst.bbox
        kps = inst.keypoints
        if kps is not None:
            kps = [(x, y, v) if 0 <= x <= w and 0 <= y <= h else (0.0, 0.0, 0) for x, y, v in kps]
        return replace(
            inst,
            bbox=(cx(x0), cy(y0), cx(x1), cy(y1)),
            polygons=[[cx(v) if i % 2 == 0 else cy(v) for i, v in enumerate(p)] for p in inst.polygons],
            keypoints=kps,
        )

    return replace(rec, instances=[fix(i) for i in rec.instances])
