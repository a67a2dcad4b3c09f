"""Canonical images -> the tensors a dense network trains on.

The target is zoo's one semantic label map (:func:`zoo.data.raster.semantic_label_map`:
background 0, category i at i + 1, ignored regions 255), letterboxed like the image with
the padding marked ignored (see :mod:`zoo.training.dense.geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.data.raster import semantic_label_map
from zoo.dataset import Dataset, ImageRecord
from zoo.errors import DataError
from zoo.training.cache import DecodedOnce
from zoo.training.dense.geometry import Letterbox

# ImageNet statistics: what smp's pretrained encoders expect, and harmless from scratch.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


def to_tensor(rgb):
    """``(S, S, 3)`` uint8 -> ``(3, S, S)`` float32 tensor, normalised."""
    import torch

    x = (rgb.astype(np.float32) - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def network_pixels(record: ImageRecord, deep: bool):
    """What the network sees of ``record``: the intensity rule's 8-bit RGB, or with ``deep``
    (MONAI's networks) the same before rounding to 256 levels (float32, 0..255 scale)."""
    return record.load_float() if deep else record.load_rgb()


def on_canvas(record: ImageRecord, imgsz: int, side: int, keep_aspect: bool, deep: bool):
    """``(letterbox, (3, side, side) tensor)``: the image as the network sees it in ``predict``,
    and where on the canvas it sits (to crop the logits back)."""
    rgb = network_pixels(record, deep)
    box = Letterbox.fit(rgb.shape[0], rgb.shape[1], imgsz, side, keep_aspect)
    return box, to_tensor(box.image(rgb))


def letterboxed_pair(record: ImageRecord, meta: Dataset, imgsz: int, side: int, keep_aspect: bool,
                     deep: bool = False):
    """The image (uint8, or float32 with ``deep``) and its uint8 label map on the canvas."""
    rgb = network_pixels(record, deep)
    labels = semantic_label_map(record, meta)
    if labels.shape != rgb.shape[:2]:
        # The record's size is the annotation's; a mismatch would misplace every mask.
        raise DataError(
            record.source or record.file or record.id,
            f"image is {rgb.shape[1]}x{rgb.shape[0]} but its annotation says "
            f"{record.width}x{record.height}",
        )
    box = Letterbox.fit(rgb.shape[0], rgb.shape[1], imgsz, side, keep_aspect)
    return box.image(rgb), box.labels(labels)


@dataclass
class SegmentationSamples(DecodedOnce):
    """``load(record) -> (image tensor, label tensor)`` for :class:`zoo.training.MappedDataset`.

    A picklable callable (not a closure) so it also works in DataLoader workers.
    ``flip`` applies a random horizontal and vertical flip: segmentation targets are
    flip-equivariant, and microscopy has no up or left. After :meth:`decode_once` the
    letterboxed pairs come from its cache, decoded once per run.
    """

    meta: Dataset
    imgsz: int
    side: int
    keep_aspect: bool = True
    flip: bool = False
    deep: bool = False  # network_pixels' float pixels (MONAI), not 8-bit
    cache: Any = None  # a zoo.training.cache.PixelCache of letterboxed (image, label map) pairs

    cache_name = "letterboxed"
    decoding = "letterbox"

    def params(self) -> dict[str, Any]:
        return {"imgsz": self.imgsz, "side": self.side, "keep_aspect": self.keep_aspect,
                "categories": list(self.meta.categories), "deep": self.deep}

    def decode(self, record: ImageRecord):
        return letterboxed_pair(record, self.meta, self.imgsz, self.side, self.keep_aspect, self.deep)

    def sample(self, arrays):
        import torch

        rgb, labels = arrays
        if self.flip:
            # torch's generator: seeded by the training loop (and per DataLoader worker)
            if torch.rand(()) < 0.5:
                rgb, labels = rgb[:, ::-1], labels[:, ::-1]
            if torch.rand(()) < 0.5:
                rgb, labels = rgb[::-1], labels[::-1]
        return to_tensor(rgb), torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64))
