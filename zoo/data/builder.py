"""How a reader makes a Dataset: it collects drafts, the builder makes the canonical objects.

A reader meets label names one file at a time, but a label's index is known only when every
file has been read (``--labels``, else zoo.yaml, else the order the format fixes, else
sorted names). So a reader fills a :class:`DatasetBuilder` with :class:`DraftRecord` s
holding names (:class:`DraftInstance`), and :meth:`DatasetBuilder.build` fixes the
vocabularies and makes every ``Instance`` and ``ImageRecord`` in one pass: canonical objects
are valid from the moment they exist (``Instance.category`` is always an index).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from zoo.data.dataset_config import apply_keypoint_meta, load_dataset_config
from zoo.data.keypoints import keypoint_vocabulary
from zoo.data.labels import EVERY_LABEL, LabelList, has_control_char, order_vocabulary
from zoo.dataset import Box, Dataset, ImageRecord, Instance, Keypoint, Problem, Source
from zoo.errors import DataError


def warn(dataset_warnings: list[Problem], file, reason: str, shape: int | None = None) -> None:
    """Collect a problem with the input (file, shape number, what is wrong). None, so that a
    reader skipping something may ``return warn(...)``."""
    dataset_warnings.append(Problem(Source(str(file), shape), reason))


@dataclass(slots=True)
class DraftInstance:
    """An object as a reader finds it: ``Instance`` with the label by name.

    ``label`` None is "ignored for every category" (labelme's ``__ignore__``); ``keypoints``
    maps a keypoint name (or, for formats that number them, its index) to ``(x, y, v)``.
    ``scored_only``: scored but never trained on or drawn (see ``ImageRecord.scored_only``).
    """

    label: str | None
    bbox: Box
    polygons: list[list[float]] = field(default_factory=list)
    mask: dict | None = None
    keypoints: dict[str | int, Keypoint] | None = None
    ignore: bool = False
    source: Source | None = None
    coco: dict | None = None
    scored_only: bool = False
    #: the shape index each named keypoint was drawn as, in ``source``'s file (labelme: one
    #: point shape per keypoint), so a warning about a point names the point, not its object
    keypoint_shapes: dict[str, int] | None = None


@dataclass(slots=True)
class DraftRecord:
    """An image as a reader finds it: the image itself (an ``ImageRecord`` without
    annotations: the builder fills them in), its objects and its image-level class names."""

    image: ImageRecord
    instances: list[DraftInstance] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)


@dataclass
class _Vocabularies:
    """The label orders :meth:`DatasetBuilder.build` settled on, and where they came from."""

    categories: list[str]
    classes: list[str]
    keypoint_names: list[str]
    source: str  # the file that fixed the order, or "the dataset", named in warnings
    found_keypoints: set[str]


@dataclass
class DatasetBuilder:
    """The drafts of one dataset and the facts its format states, built into a Dataset.

    ``categories`` / ``classes`` / ``keypoint_names``: an order the format itself fixes
    (COCO's category list, YOLO's names, data.yaml's keypoints), used when neither
    ``labels`` nor zoo.yaml gives one. ``skeleton`` and ``flip_idx``: what the format says
    of its keypoints (zoo.yaml's own, when it has them, come first for ``flip_idx``; the
    format's skeleton wins). ``category_ids``: a COCO source's ids by name.
    """

    root: Path
    format: str
    labels: str | Path | LabelList | None = None
    categories: list[str] | None = None
    classes: list[str] | None = None
    keypoint_names: list[str] | None = None
    skeleton: list[tuple[int, int]] | None = None
    flip_idx: list[int] | None = None
    category_ids: dict[str, int] = field(default_factory=dict)
    #: class names seen but not set on any image (labelme writes every flag into each file)
    class_names_found: set[str] = field(default_factory=set)
    #: splits the source defines; None: train/ val/ test/ top folders when every image has one
    splits: dict[str, list[str]] | None = None
    records: list[DraftRecord] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def warn(self, file, reason: str, shape: int | None = None) -> None:
        """Collect a problem with the input (a skipped or repaired shape, file or image)."""
        warn(self.warnings, file, reason, shape)

    def add(self, record: DraftRecord) -> None:
        self.records.append(record)

    def build(self) -> Dataset:
        """The Dataset: vocabularies fixed, names replaced by indices, shapes of labels not in
        the label list dropped (each label one warning)."""
        if not self.records:
            raise DataError(self.root, f"holds no image zoo could read ({self.format})"
                            + (f" (first problem: {self.warnings[0]})" if self.warnings else ""))
        config = load_dataset_config(self.root)
        label_list = self.labels
        if label_list is EVERY_LABEL:
            label_list, config = None, {k: v for k, v in config.items() if k not in ("categories", "classes")}
        elif label_list is not None and not isinstance(label_list, LabelList):
            label_list = LabelList.read(label_list)
        vocab = self._vocabularies(config, label_list)
        images = self._images(vocab)
        if vocab.keypoint_names and config.get("keypoint_names"):
            self._warn_unknown_keypoints(vocab, config["_file"])
        return self._dataset(images, vocab, config)

    def _warn_unknown_keypoints(self, vocab: _Vocabularies, config_file) -> None:
        """One warning per point label zoo.yaml's keypoint_names lacks, at the first point
        drawn with it (file and shape), with how many there are."""
        extra = vocab.found_keypoints - set(vocab.keypoint_names)
        if not extra:
            return
        first: dict[str, Source | None] = {}
        count: dict[str, int] = dict.fromkeys(extra, 0)
        for rec in self.records:
            for inst in rec.instances:
                for name in (inst.keypoints or ()):
                    if name in count:
                        count[name] += 1
                        first.setdefault(name, _point_source(inst, name))
        names = ", ".join(vocab.keypoint_names)
        for name in sorted(extra):
            where = first.get(name)
            self.warn(where.file if where else config_file,
                      f"point label '{name}' is not in keypoint_names ({names}, from {config_file}); "
                      f"skipped ({count[name]} point(s){', the first here' if count[name] > 1 else ''})",
                      where.shape if where else None)

    def _vocabularies(self, config: dict, label_list: LabelList | None) -> _Vocabularies:
        """Every name found, ordered by --labels, else zoo.yaml, else the format, else sorted."""
        found_cats: set[str] = set()
        found_kpts: set[str] = set()
        found_classes: set[str] = set(self.class_names_found)
        for rec in self.records:
            for inst in rec.instances:
                if inst.label is not None:
                    found_cats.add(inst.label)
                if inst.keypoints:
                    found_kpts.update(k for k in inst.keypoints if isinstance(k, str))
            found_classes.update(rec.classes)
        # --labels names the instance categories, or the image classes of a folder without shapes
        given_cats, given_classes, source = self.categories, self.classes, "the dataset"
        if label_list is not None:
            if found_cats or not found_classes:
                given_cats, source = label_list.names, str(label_list.file)
            else:
                given_classes, source = label_list.names, str(label_list.file)
        else:
            if config.get("categories") is not None:
                given_cats, source = config["categories"], str(config["_file"])
            if config.get("classes") is not None:
                given_classes, source = config["classes"], str(config["_file"])
        kpt_names = (list(self.keypoint_names) if self.keypoint_names is not None
                     else keypoint_vocabulary(found_kpts, config))
        return _Vocabularies(
            categories=writable_names(order_vocabulary(found_cats, given_cats), self.warnings, source),
            classes=writable_names(order_vocabulary(found_classes, given_classes), self.warnings, source),
            keypoint_names=kpt_names,
            source=source,
            found_keypoints=found_kpts,
        )

    def _images(self, vocab: _Vocabularies) -> list[ImageRecord]:
        """Each draft as its ImageRecord, names as indices; unknown names counted and warned."""
        cat_index = {n: i for i, n in enumerate(vocab.categories)}
        class_index = {n: i for i, n in enumerate(vocab.classes)}
        kpt_index = {n: i for i, n in enumerate(vocab.keypoint_names)}
        n_kpt = len(vocab.keypoint_names)
        unknown_cats: dict[str, int] = {}
        unknown_classes: dict[str, int] = {}
        images = []
        for draft in self.records:  # the hot loop of reading: one pass, plain Python
            rec = draft.image  # its (empty) annotation lists are filled in place
            instances, scored_only, labels = rec.instances, rec.scored_only, rec.labels
            for d in draft.instances:
                label = d.label
                category = -1 if label is None else cat_index.get(label)
                if category is None:
                    unknown_cats[label] = unknown_cats.get(label, 0) + 1
                    continue
                kp = d.keypoints
                if kp is not None:
                    kp = _keypoint_list(kp, kpt_index, n_kpt)
                inst = Instance(category, d.bbox, d.polygons, d.mask, kp, d.ignore, d.source, d.coco)
                (scored_only if d.scored_only else instances).append(inst)
            for name in draft.classes:
                if name in class_index:
                    labels.append(class_index[name])
                else:
                    unknown_classes[name] = unknown_classes.get(name, 0) + 1
            images.append(rec)
        for name, n in sorted(unknown_cats.items()):
            self.warn(vocab.source, f"label '{name}' is not in the label list; its {n} shape(s) skipped")
        for name, n in sorted(unknown_classes.items()):
            self.warn(vocab.source, f"class '{name}' is not in the class list; skipped on {n} image(s)")
        return images

    def _dataset(self, images: list[ImageRecord], vocab: _Vocabularies, config: dict) -> Dataset:
        """The Dataset with the facts of its files: keypoint meta, flip order, ids, splits."""
        ds = Dataset(
            categories=vocab.categories,
            images=images,
            classes=vocab.classes,
            keypoint_names=vocab.keypoint_names,
            root=self.root,
            format=self.format,
            warnings=self.warnings,
            pixel_spacing=config.get("pixel_spacing"),
        )
        apply_keypoint_meta(ds, config)
        if ds.keypoint_names:
            if self.skeleton:
                ds.skeleton = list(self.skeleton)
            flip = config.get("flip_idx") or self.flip_idx
            ds.flip_idx = [int(i) for i in flip] if flip else None
        ds.category_ids = {n: self.category_ids[n] for n in ds.categories if n in self.category_ids}
        ds.splits = self.splits if self.splits is not None else folder_splits(images)
        return ds


def _point_source(inst: DraftInstance, name: str) -> Source | None:
    """Where the point ``name`` of ``inst`` was drawn: its own shape when the reader knows it,
    else its object's."""
    if inst.source is None:
        return None
    shape = (inst.keypoint_shapes or {}).get(name, inst.source.shape)
    return Source(inst.source.file, shape)


def _keypoint_list(found: dict, index: dict[str, int], n: int) -> list[Keypoint]:
    """A ``{name or index: (x, y, v)}`` dict as the ``n`` points in vocabulary order
    (unlabelled ones ``(0, 0, 0)``; names not in the vocabulary dropped)."""
    kp = [(0.0, 0.0, 0)] * n
    for name, xyv in found.items():
        k = name if isinstance(name, int) else index.get(name)
        if k is not None and 0 <= k < n:
            kp[k] = xyv
    return kp


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
