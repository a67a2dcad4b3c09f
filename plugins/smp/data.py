"""Canonical images -> the tensors an smp model trains on.

The target is zoo's one semantic label map (:func:`zoo.data.raster.semantic_label_map`:
background 0, category i at i + 1, ignored regions 255), letterboxed like the image with
the padding marked ignored (see :mod:`zoo.plugins.smp.geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from zoo.dataset import Dataset, ImageRecord
from zoo.plugins.smp.geometry import Letterbox

# ImageNet statistics: what smp's pretrained encoders expect, and harmless from scratch.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255

# Letterboxed pairs are kept in memory while they fit in this many bytes: decoding and
# rasterising every image again each epoch costs more than the model on small datasets.
CACHE_BYTES = 1 << 30


def to_tensor(rgb):
    """``(S, S, 3)`` uint8 -> ``(3, S, S)`` float32 tensor, normalised."""
    import torch

    x = (rgb.astype(np.float32) - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def letterboxed_pair(record: ImageRecord, meta: Dataset, imgsz: int, side: int, keep_aspect: bool):
    """The image and its label map on the canvas, both uint8."""
    from zoo.data.raster import semantic_label_map

    rgb = record.load_rgb()
    labels = semantic_label_map(record, meta)
    if labels.shape != rgb.shape[:2]:
        # The record's size is the annotation's; a mismatch would misplace every mask.
        from zoo.errors import DataError

        raise DataError(
            record.source or record.file or record.id,
            f"image is {rgb.shape[1]}x{rgb.shape[0]} but its annotation says "
            f"{record.width}x{record.height}",
        )
    box = Letterbox.fit(rgb.shape[0], rgb.shape[1], imgsz, side, keep_aspect)
    return box.image(rgb), box.labels(labels)


@dataclass
class SegmentationSamples:
    """``load(record) -> (image tensor, label tensor)`` for :class:`zoo.training.MappedDataset`.

    A picklable callable (not a closure) so it also works in DataLoader workers.
    ``flip`` applies a random horizontal and vertical flip: segmentation targets are
    flip-equivariant, and microscopy has no up or left.
    """

    meta: Dataset
    imgsz: int
    side: int
    keep_aspect: bool = True
    flip: bool = False
    _cache: dict = field(default_factory=dict, repr=False)
    _cached_bytes: int = field(default=0, repr=False)

    def __call__(self, record: ImageRecord):
        import torch

        pair = self._cache.get(record.id)
        if pair is None:
            pair = letterboxed_pair(record, self.meta, self.imgsz, self.side, self.keep_aspect)
            size = pair[0].nbytes + pair[1].nbytes
            if self._cached_bytes + size <= CACHE_BYTES:
                self._cache[record.id] = pair
                self._cached_bytes += size
        rgb, labels = pair
        if self.flip:
            # torch's generator: seeded by the training loop (and per DataLoader worker)
            if torch.rand(()) < 0.5:
                rgb, labels = rgb[:, ::-1], labels[:, ::-1]
            if torch.rand(()) < 0.5:
                rgb, labels = rgb[::-1], labels[::-1]
        return to_tensor(rgb), torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64))
