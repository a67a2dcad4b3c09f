"""The canonical dataset: one model that every reader fills and every backend and the
evaluator consume.

Conventions, fixed here once:

* Coordinates are absolute pixels in the image *after* EXIF orientation, as floats, with
  the origin at the top-left corner of the top-left pixel (COCO's convention). Boxes are
  ``(x0, y0, x1, y1)``.
* ``Dataset.categories`` are the instance classes (detect, instance-seg, keypoint,
  semantic-seg); a category's id is its position in that list. ``Dataset.classes`` are the
  image-level classes for classify (labelme ``flags``, class folders). Both are ordered
  explicitly (``--labels`` or sorted names), never by order of first appearance.
* Semantic label maps put background at 0 and category ``i`` at ``i + 1``; 255 is ignored.
* A polygon is a flat list ``[x0, y0, x1, y1, ...]`` (COCO's ``segmentation`` format); an
  instance may have several (labelme ``group_id`` joins parts of one object).
* A mask is COCO RLE ``{"size": [h, w], "counts": str}`` over the whole image.
* Keypoints are ``(x, y, v)`` triples in ``Dataset.keypoint_names`` order, COCO visibility:
  0 not labelled, 1 labelled but hidden, 2 visible.
* Ground truth read from a COCO file is also kept exactly as the file gives it
  (``Instance.coco``, ``Dataset.category_ids``): the evaluator scores a COCO source against
  the file's own annotations (its ``area``, crowd regions, polygons filled by pycocotools'
  rule), so zoo's numbers equal pycocotools' on that file. Sources without such fields
  (labelme, VOC, YOLO) get areas computed and polygons filled by zoo (:mod:`zoo.data.raster`).
* An image needs no pixels to be scored (its size is enough); pixels (``file`` or labelme
  ``imageData``) are needed only to train, predict or draw.

Plain dataclasses (not pydantic) because readers build hundreds of thousands of these and
the model carries no user input that needs validating beyond what readers already check.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoo.errors import ZooError
from zoo.files import COMMON_IMAGE_SUFFIXES, read_json
from zoo.pixels import as_rgb, decode, image_rule, is_deep

if TYPE_CHECKING:
    from zoo.pixels import Decoded, IntensityRule

Box = tuple[float, float, float, float]
Keypoint = tuple[float, float, int]


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (0 when they do not overlap)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(slots=True, frozen=True)
class Source:
    """Where something came from, so errors and warnings can point at it."""

    file: str
    shape: int | None = None

    def __str__(self) -> str:
        return self.file if self.shape is None else f"{self.file} (shape {self.shape})"


@dataclass(slots=True)
class Problem:
    """A collected warning about the input: file, shape and what is wrong."""

    source: Source
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass(slots=True)
class Instance:
    """One annotated object.

    ``coco`` is the annotation as a COCO source wrote it (its ``bbox``, ``area``,
    ``iscrowd``, ``segmentation`` and, for keypoints, ``keypoints`` / ``num_keypoints``;
    keys the file lacks are absent), ``None`` for every other source. Nothing edits it:
    :func:`zoo.evaluation.ground_truth.to_coco` writes it back as given, so the ground truth scored is
    the file's own. The canonical fields hold the same object in zoo's form (box clipped to
    the image, RLE compressed) for training and drawing.
    """

    category: int
    bbox: Box
    polygons: list[list[float]] = field(default_factory=list)
    mask: dict | None = None
    keypoints: list[Keypoint] | None = None
    ignore: bool = False
    source: Source | None = None
    coco: dict | None = None

    @property
    def box_area(self) -> float:
        x0, y0, x1, y1 = self.bbox
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


@dataclass(slots=True)
class ImageRecord:
    """One image and its annotations.

    ``id`` is stable and unique within a dataset: the image's path relative to the dataset
    root, without extension, in POSIX form (``"train/cell_001"``). Pixels come from ``file``
    or, when that is absent, from the base64 ``imageData`` of the labelme JSON named by
    ``embedded`` (decoded only when pixels are asked for).
    """

    id: str
    width: int
    height: int
    file: Path | None = None
    embedded: Path | None = None
    labels: list[int] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)
    source: Source | None = None
    #: Ground truth that is scored but never trained on or drawn: a COCO file's annotations
    #: that pycocotools counts though they hold no usable shape (zero area, no geometry).
    #: Only :func:`zoo.evaluation.ground_truth.to_coco` reads them, in the file's order among
    #: ``instances``.
    scored_only: list[Instance] = field(default_factory=list)
    #: The patient, study, volume, video or slide this image belongs to (``None``: its own).
    #: Splits, folds and the bootstrap keep a group whole; readers that know it (DICOM
    #: PatientID, a NIfTI volume, a labelme video folder) set it, ``--group`` overrides it.
    group: str | None = None

    #: How deep pixels (16-bit, float, DICOM) become what an 8-bit network sees: the dataset's
    #: rule (:mod:`zoo.data.intensity` fits it from the training images), the same object on
    #: every record of a run. ``None``: 8-bit images as they are, deeper ones stretched over
    #: their own 0.5-99.5 percentiles (drawing, ``zoo check``; never training).
    intensity: IntensityRule | None = None

    def pixels(self) -> Decoded:
        """The canonical pixels, full range, and how they were obtained (:func:`zoo.pixels.decode`)."""
        if self.file is not None:
            return decode(self.file)
        if self.embedded is not None:
            return decode(embedded_image_bytes(self.embedded), f"{self.embedded} (imageData)")
        raise ZooError(f"image '{self.id}' has no pixels (no image file was found and no imageData); "
                       "pixels are needed to train, predict or draw, not to score")

    def is_deep(self) -> bool:
        """Whether the pixels are deeper than 8 bits (or float), from the file's header."""
        if self.file is not None:
            return is_deep(self.file)
        return self.pixels().deep  # an embedded imageData is in memory anyway

    def load_rgb(self):
        """The image as an ``(H, W, 3)`` uint8 numpy array, EXIF orientation applied: 8-bit
        images as they are, deeper ones through the intensity rule."""
        return self.rgb_of(self.pixels())

    def load_float(self):
        """:meth:`load_rgb` before its rounding: ``(H, W, 3)`` float32 on the 0..255 scale, for
        networks that take every level deep pixels hold (MONAI's), not 256 of them."""
        import numpy as np

        decoded = self.pixels()
        if self.intensity is None and not decoded.deep:
            return decoded.array.astype(np.float32)
        rule = self.intensity or image_rule(decoded.array)
        return as_rgb(rule.to_unit(decoded.array) * np.float32(255.0))

    def rgb_of(self, decoded: Decoded):
        """What an 8-bit network sees of ``decoded`` (this record's pixels) under the rule."""
        if self.intensity is None and not decoded.deep:
            return decoded.array
        rule = self.intensity or image_rule(decoded.array)
        return as_rgb(rule.to_uint8(decoded.array))

    def open(self):
        """The image as a PIL RGB image: :meth:`load_rgb`'s pixels."""
        from PIL import Image

        return Image.fromarray(self.load_rgb())

    @property
    def has_pixels(self) -> bool:
        return self.file is not None or self.embedded is not None

    @property
    def suffix(self) -> str:
        """The file extension to use when this image is written out: the file's own when it
        is an image format others read, else ``.png`` (a DICOM, a frame of a multi-frame
        file, an embedded ``imageData``: zoo writes their pixels itself)."""
        own = self.file.suffix.lower() if self.file is not None else ""
        return own if own in COMMON_IMAGE_SUFFIXES else ".png"


def id_path(image_id: str, suffix: str) -> Path:
    """A record id as a relative file path with ``suffix`` (``"a/b"`` -> ``a/b.json``).

    Ids come from the user's folder structure: ``.``/``..`` parts are dropped so the path
    can never climb out of the folder it is joined to.
    """
    parts = [p for p in image_id.split("/") if p not in ("", ".", "..")] or ["_"]
    return Path(*parts[:-1], parts[-1] + suffix)


def embedded_image_bytes(json_path: Path) -> bytes:
    """The decoded ``imageData`` of a labelme JSON file (the reader checked it decodes)."""
    return base64.b64decode(read_json(Path(json_path))["imageData"])


def strip_annotations(dataset: Dataset) -> list[ImageRecord]:
    """The images as a backend may see them at prediction time: pixels only."""
    return [replace(r, instances=[], labels=[]) for r in dataset.images]


@dataclass(slots=True)
class Dataset:
    """An annotated image collection with its vocabularies and the facts its files state
    (keypoint skeleton, OKS sigmas, flip order, pixel spacing, splits, COCO ids), as
    detectron2's ``Metadata``: a backend reads them here, never from the user's files."""

    categories: list[str] = field(default_factory=list)
    images: list[ImageRecord] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    keypoint_names: list[str] = field(default_factory=list)
    skeleton: list[tuple[int, int]] = field(default_factory=list)
    oks_sigmas: list[float] | None = None
    # The index each keypoint takes after a horizontal flip, as the files state it (zoo.yaml's
    # or data.yaml's flip_idx); None when they do not, and left/right in the names then decide
    # (zoo.data.keypoints.flip_index). Augmentation must not flip keypoints it cannot pair.
    flip_idx: list[int] | None = None
    # Physical size of a pixel, (row, column) in millimetres, from zoo.yaml: boundary
    # distances (HD95, ASSD) are reported in millimetres when given, else in pixels.
    pixel_spacing: tuple[float, float] | None = None
    # Each image's pixel size (row, column) in mm as its own header states it (DICOM
    # PixelSpacing, a NIfTI's zooms), by image id: used where zoo.yaml gives no pixel_spacing.
    image_spacing: dict[str, tuple[float, float]] = field(default_factory=dict)
    root: Path | None = None
    format: str = ""
    warnings: list[Problem] = field(default_factory=list)
    # Splits the source itself defines (VOC ImageSets/Main, train/ val/ test/ folders, COCO
    # instances_train/val files): image ids per split name. Informational; empty when none.
    splits: dict[str, list[str]] = field(default_factory=dict)
    # A COCO source's own category ids, by category name (COCO's 1..90 with gaps). Results
    # files and to_coco use them (coco_category_ids), so predictions carry the ground-truth
    # file's ids. Empty for other sources: category k is id k + 1.
    category_ids: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self):
        return iter(self.images)

    def meta(self) -> Dataset:
        """The same dataset without images: the vocabularies a trained model needs."""
        return replace(self, images=[], warnings=[])

    def spacing_of(self, image_id: str) -> tuple[float, float] | None:
        """The pixel size (row, column) in mm of an image: zoo.yaml's, else its header's, else None."""
        return self.pixel_spacing or self.image_spacing.get(image_id)

    def subset(self, ids: Iterable[str]) -> Dataset:
        """The images with these ids, in the order given."""
        by_id = {r.id: r for r in self.images}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise KeyError(f"images not in dataset: {missing[:5]}")
        return replace(self, images=[by_id[i] for i in ids], warnings=[])

    def image(self, image_id: str) -> ImageRecord:
        for r in self.images:
            if r.id == image_id:
                return r
        raise KeyError(image_id)

    def coco_category_ids(self) -> list[int]:
        """The COCO ``category_id`` of each category, in ``categories`` order: the source's own
        id where it has one, else the smallest positive id not taken (``k + 1`` when the
        source numbers nothing)."""
        taken = set(self.category_ids.values())
        out, free = [], 1
        for name in self.categories:
            cid = self.category_ids.get(name)
            if cid is None:
                while free in taken:
                    free += 1
                cid = free
                taken.add(cid)
            out.append(int(cid))
        return out

    def semantic_classes(self) -> list[str]:
        """Class names of a semantic label map: background first, then the categories."""
        return ["_background_", *self.categories]

    def summary(self) -> dict[str, Any]:
        """Counts for tables: images, instances per category, image labels per class."""
        per_cat = [0] * len(self.categories)
        per_class = [0] * len(self.classes)
        ignored = 0
        for r in self.images:
            for inst in r.instances:
                if inst.ignore:
                    ignored += 1
                else:
                    per_cat[inst.category] += 1
            for c in r.labels:
                per_class[c] += 1
        return {
            "images": len(self.images),
            "instances": dict(zip(self.categories, per_cat)),
            "ignored": ignored,
            "labels": dict(zip(self.classes, per_class)),
            "warnings": len(self.warnings),
        }
