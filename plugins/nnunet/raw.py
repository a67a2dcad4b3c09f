"""zoo's split -> an nnU-Net raw dataset (``nnUNet_raw/Dataset001_zoo``): no nnunetv2 here.

* ``imagesTr/<case>_0000.png``: the image as RGB (nnU-Net's natural-image reader takes the
  three colours of one PNG as three channels, ``channel_names`` R, G, B);
* ``labelsTr/<case>.png``: zoo's label map (:func:`zoo.data.raster.semantic_label_map`), with
  zoo's ignore value 255 rewritten to nnU-Net's ignore label, which must be the highest
  label (one past the last class);
* ``dataset.json``: channels, labels (``background`` 0, each category, ``ignore``), the
  number of cases, ``.png``.

Cases are named ``case_00000``, ... (zoo's record ids may hold ``/``); ``zoo_cases.json``
maps each case to its record id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zoo.dataset import Dataset, ImageRecord

DATASET_ID = 1
DATASET_NAME = "Dataset001_zoo"
IGNORE = 255


@dataclass
class RawDataset:
    folder: Path
    cases: dict[str, str] = field(default_factory=dict)  # case -> record id
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def ignore_label(self) -> int:
        return self.labels["ignore"]


def label_names(categories: Sequence[str]) -> dict[str, int]:
    """dataset.json's ``labels``: background 0, category i at i + 1, ignore last. nnU-Net
    keys them by name, so a category named like a reserved key gets its index appended."""
    labels = {"background": 0}
    for i, name in enumerate(categories, start=1):
        key = name if name not in labels and name != "ignore" else f"{name}_{i}"
        labels[key] = i
    labels["ignore"] = len(categories) + 1
    return labels


def write_raw_dataset(root: Path, meta: Dataset, records: Sequence[ImageRecord]) -> RawDataset:
    """Write ``records`` (training and validation cases alike) under ``root``."""
    import numpy as np
    from PIL import Image

    from zoo.atomic import write_json
    from zoo.data.raster import semantic_label_map

    folder = Path(root) / DATASET_NAME
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(parents=True, exist_ok=True)
    raw = RawDataset(folder, labels=label_names(meta.categories))
    for k, record in enumerate(records):
        case = f"case_{k:05d}"
        rgb = record.load_rgb()
        labels = semantic_label_map(record, meta)
        if labels.shape != rgb.shape[:2]:
            from zoo.errors import DataError

            raise DataError(record.source or record.file or record.id,
                            f"image is {rgb.shape[1]}x{rgb.shape[0]} but its annotation says "
                            f"{record.width}x{record.height}")
        labels = np.where(labels == IGNORE, raw.ignore_label, labels).astype(np.uint8)
        Image.fromarray(rgb).save(folder / "imagesTr" / f"{case}_0000.png")
        Image.fromarray(labels).save(folder / "labelsTr" / f"{case}.png")
        raw.cases[case] = record.id
    write_json(folder / "dataset.json", {
        "channel_names": {"0": "R", "1": "G", "2": "B"},
        "labels": raw.labels,
        "numTraining": len(records),
        "file_ending": ".png",
        "name": "zoo",
        "description": "written by zoo from its training split",
    })
    write_json(folder / "zoo_cases.json", raw.cases)  # which zoo image each case is
    return raw
