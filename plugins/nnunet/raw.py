"""zoo's split -> an nnU-Net raw dataset (``nnUNet_raw/Dataset001_zoo``): no nnunetv2 here.

* ``imagesTr/<case>_0000.png``: the image as RGB (nnU-Net's natural-image reader takes the
  three colours of one PNG as three channels, ``channel_names`` R, G, B); deeper images
  (16-bit, DICOM) as 16-bit PNG, their depth kept (:func:`network_input`);
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
RGB = ("R", "G", "B")
#: Signed pixels (a DICOM's stored values without a rescale) are shifted by this into uint16.
SIGNED_OFFSET = 32768


def network_input(record: ImageRecord):
    """The ``(C, H, W)`` image nnU-Net reads for ``record`` (PNG-storable), and its channel
    names. 8-bit images: RGB. Deeper ones keep their depth (nnU-Net normalises them itself,
    as it would the original scan): unsigned 16-bit as it is, signed values shifted by
    :data:`SIGNED_OFFSET`, floats (CT in HU after a rescale) spread over 0..65535 by the
    dataset's intensity rule. Each is an affine map, which nnU-Net's normalisations
    (z-score; CT: percentile clip then z-score over the dataset) undo; a grayscale channel is
    named ``CT`` for CT (nnU-Net's dataset-wide CT normalisation), else per-image z-score."""
    import numpy as np

    from zoo.pixels import image_rule

    decoded = record.pixels()
    if not decoded.deep:
        return np.ascontiguousarray(record.rgb_of(decoded).transpose(2, 0, 1)), RGB
    a = decoded.array
    if a.dtype.kind == "u" and a.dtype.itemsize <= 2:
        a = a.astype(np.uint16)
    elif a.dtype.kind == "i":
        a = np.clip(a.astype(np.int64) + SIGNED_OFFSET, 0, 65535).astype(np.uint16)
    else:
        rule = record.intensity or image_rule(a)
        a = np.rint(rule.to_unit(a) * 65535.0).astype(np.uint16)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    names = ("CT",) if decoded.modality == "CT" and len(a) == 1 else tuple(f"intensity{i}" for i in range(len(a)))
    return np.ascontiguousarray(a), names


def _save_png(image, path: Path) -> None:
    """A ``(C, H, W)`` image as the PNG nnU-Net's natural-image reader takes: gray or RGB, 8 or 16 bits."""
    import numpy as np
    from PIL import Image

    if image.dtype == np.uint8 or len(image) == 1:
        Image.fromarray(image[0] if len(image) == 1 else image.transpose(1, 2, 0)).save(path)
    else:
        import cv2

        cv2.imwrite(str(path), np.ascontiguousarray(image.transpose(1, 2, 0)[..., ::-1]))


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
    channels = None
    for k, record in enumerate(records):
        case = f"case_{k:05d}"
        image, names = network_input(record)
        channels = channels or names
        labels = semantic_label_map(record, meta)
        if labels.shape != image.shape[1:]:
            from zoo.errors import DataError

            raise DataError(record.source or record.file or record.id,
                            f"image is {image.shape[2]}x{image.shape[1]} but its annotation says "
                            f"{record.width}x{record.height}")
        labels = np.where(labels == IGNORE, raw.ignore_label, labels).astype(np.uint8)
        _save_png(image, folder / "imagesTr" / f"{case}_0000.png")
        Image.fromarray(labels).save(folder / "labelsTr" / f"{case}.png")
        raw.cases[case] = record.id
    write_json(folder / "dataset.json", {
        "channel_names": {str(i): name for i, name in enumerate(channels or RGB)},
        "labels": raw.labels,
        "numTraining": len(records),
        "file_ending": ".png",
        "name": "zoo",
        "description": "written by zoo from its training split",
    })
    write_json(folder / "zoo_cases.json", raw.cases)  # which zoo image each case is
    return raw
