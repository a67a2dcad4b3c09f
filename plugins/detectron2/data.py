"""Canonical records -> detectron2's dataset dicts, registered in memory.

Nothing is written to disk: the split is registered in ``DatasetCatalog`` under a name unique
to the run (two runs in one process never share one) and removed when training ends, and
:class:`RecordMapper` reads pixels through the canonical records (so labelme's embedded
``imageData`` and EXIF orientation work as for every other backend).

Conventions: ``category_id`` is zoo's category index (detectron2's contiguous ids start at
0 too); boxes are ``XYXY_ABS`` in original pixels; masks are COCO RLE from zoo's one
rasteriser (``INPUT.MASK_FORMAT: bitmask``); keypoints are flat ``[x, y, v] * K`` in zoo's
continuous pixel coordinates. Ignored instances are left out: detectron2 has no notion of
an ignored region that is neither object nor background.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from zoo.dataset import Dataset, ImageRecord

_counter = itertools.count()


def dataset_dicts(records: Sequence[ImageRecord], *, masks: bool, num_keypoints: int) -> list[dict[str, Any]]:
    """detectron2's standard dataset dicts for ``records`` (see the module doc)."""
    return [record_dict(r, masks=masks, num_keypoints=num_keypoints) for r in records]


def record_dict(record: ImageRecord, *, masks: bool, num_keypoints: int) -> dict[str, Any]:
    from detectron2.structures import BoxMode

    from zoo.data.raster import instance_mask, mask_to_rle

    annotations = []
    for inst in record.instances:
        if inst.ignore or inst.category < 0:
            continue
        ann: dict[str, Any] = {"bbox": list(inst.bbox), "bbox_mode": BoxMode.XYXY_ABS, "category_id": inst.category}
        if masks:
            ann["segmentation"] = mask_to_rle(instance_mask(inst, record.height, record.width))
        if num_keypoints:
            kps = list(inst.keypoints or [])[:num_keypoints]
            kps += [(0.0, 0.0, 0)] * (num_keypoints - len(kps))
            ann["keypoints"] = [float(v) for x, y, vis in kps for v in ((x, y, vis) if vis > 0 else (0.0, 0.0, 0))]
        annotations.append(ann)
    return {
        "file_name": str(record.file or record.embedded or record.id),
        "image_id": record.id,
        "height": record.height,
        "width": record.width,
        "annotations": annotations,
    }


@contextlib.contextmanager
def registered(
    prefix: str, records: Sequence[ImageRecord], meta: Dataset, *, masks: bool, num_keypoints: int, flip_idx=None
) -> Iterator[str]:
    """``records`` registered in ``DatasetCatalog``/``MetadataCatalog`` under a fresh name,
    removed again on exit. Dicts are built lazily, when detectron2 asks for them."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    name = f"zoo_{prefix}_{next(_counter)}_{uuid.uuid4().hex[:8]}"
    items = list(records)
    DatasetCatalog.register(name, lambda: dataset_dicts(items, masks=masks, num_keypoints=num_keypoints))
    md = MetadataCatalog.get(name)
    md.set(thing_classes=list(meta.categories))
    if num_keypoints:
        names = list(meta.keypoint_names)
        md.set(keypoint_names=names, keypoint_flip_map=flip_pairs(names, flip_idx))
        if meta.skeleton:
            md.set(keypoint_connection_rules=[(names[a], names[b], (0, 255, 0)) for a, b in meta.skeleton])
    try:
        yield name
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def flip_pairs(names: list[str], flip_idx: list[int] | None) -> list[tuple[str, str]]:
    """``flip_idx`` (keypoint i becomes flip_idx[i] under a horizontal flip) as detectron2's
    ``keypoint_flip_map``: name pairs, each once."""
    if not flip_idx:
        return []
    return [(names[i], names[j]) for i, j in enumerate(flip_idx) if i < j]


class RecordMapper:
    """detectron2's ``DatasetMapper`` (augmentations from the config, annotations to
    ``Instances``), with the pixels read from zoo's records instead of ``file_name``."""

    def __init__(self, cfg, is_train: bool, records: Sequence[ImageRecord]):
        from detectron2.data import DatasetMapper
        from detectron2.data import detection_utils as utils

        if is_train:  # reads the keypoint flip map of cfg.DATASETS.TRAIN from MetadataCatalog
            self.base = DatasetMapper(cfg, is_train=True)
        else:  # the test resize only: the training split may be unregistered by now
            augs = utils.build_augmentation(cfg, is_train=False)
            self.base = DatasetMapper(is_train=False, augmentations=augs, image_format=cfg.INPUT.FORMAT)
        self.records = {r.id: r for r in records}

    def __call__(self, dataset_dict: dict[str, Any]) -> dict[str, Any]:
        import numpy as np
        import torch
        from detectron2.data import detection_utils as utils
        from detectron2.data import transforms as T

        d = copy.deepcopy(dataset_dict)
        image = utils.convert_PIL_to_numpy(self.records[d["image_id"]].open(), self.base.image_format)
        utils.check_image_size(d, image)
        aug = T.AugInput(image)
        transforms = self.base.augmentations(aug)
        image = aug.image
        d["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if not self.base.is_train:
            d.pop("annotations", None)
            return d
        if "annotations" in d:
            self.base._transform_annotations(d, transforms, image.shape[:2])
        return d

    def inference_input(self, record: ImageRecord) -> dict[str, Any]:
        """The model's input for one image at test time (outputs come back at its size)."""
        return self({"image_id": record.id, "height": record.height, "width": record.width})
