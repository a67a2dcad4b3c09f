"""``zoo check``: an annotation linter.

It reads a folder as ``zoo run`` would (every label kept, so a label a list would drop can
be pointed at shape by shape) and runs one small check per kind of mistake annotators make.
Each check returns :class:`Finding` objects (file, shape index, what is wrong, a suggested
fix); the CLI paints them. Levels:

* ``error`` — the data as read trains something else than meant: a class split in two
  (``'Person'`` beside ``'person'``), shapes a label list drops, a class too rare to be
  both trained and scored; and whatever makes ``zoo run`` refuse the data (an image known
  only by its annotation: one fact, one severity). ``zoo run --strict`` refuses data with any.
* ``warning`` — worth a look: duplicates, tiny objects, imbalance, unannotated images,
  points outside their object, everything the readers repair or skip (adapters/POLICY.md).

What can be repaired without a person (``zoo check --fix``) is in :mod:`zoo.data.lint_fix`.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.data.dataset_config import load_dataset_config
from zoo.data.groups import array_digest, group_images, leaks
from zoo.data.labels import EVERY_LABEL, LabelList
from zoo.data.raster import instance_mask
from zoo.data.reading import read_dataset
from zoo.data.split import data_split_parts
from zoo.dataset import Dataset, ImageRecord, Instance, box_iou
from zoo.errors import ZooError
from zoo.files import IMAGE_SUFFIXES
from zoo.progress import track
from zoo.tasks import TASKS, get_task

ERROR, WARNING = "error", "warning"

#: Overlap above which two shapes of one label on one image are the same object twice.
DUPLICATE_IOU = 0.95
#: A class this many times rarer than the most frequent one is "heavily" imbalanced.
IMBALANCE_RATIO = 10.0
#: Instances with a box smaller than this (pixels, either side) or area are too small to learn.
MIN_SIDE = 2.0
MIN_AREA = 16.0


@dataclass(slots=True)
class Finding:
    """One problem: where (file, shape index), what, and how to fix it.

    ``rename`` / ``drop``: what ``zoo check --fix`` does about it, when it can
    (``rename = (old, new)`` label names; ``drop = ("image", id)`` or ``("instance", id, index)``).
    """

    check: str
    level: str
    file: str
    shape: int | None
    message: str
    fix: str = ""
    rename: tuple[str, str] | None = None
    drop: tuple | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "level": self.level, "file": self.file, "shape": self.shape,
                "message": self.message, "fix": self.fix}


@dataclass
class LintContext:
    """What every check may look at."""

    dataset: Dataset
    path: Path
    declared_categories: list[str] | None = None  # --labels / zoo.yaml, when given
    declared_classes: list[str] | None = None
    declared_in: str = ""
    task: Any = None  # a zoo.tasks.Task, when --task is given
    val: float = 0.2
    test: float = 0.0
    group: str | None = None  # --group REGEX (zoo.data.groups)

    @functools.cached_property
    def pixels(self) -> dict[str, PixelFacts | None]:
        """Each image decoded once, for the checks that look at pixels."""
        images = self.dataset.images
        seq = track(images, "reading pixels", total=len(images)) if len(images) > 200 else images
        return {r.id: pixel_facts(r) for r in seq}

    @functools.cached_property
    def grouping(self):
        """The images' groups (zoo.data.groups): --group, zoo.yaml, the reader; duplicates merged."""
        return group_images(self.dataset, self.group)


@dataclass
class LintReport:
    dataset: Dataset
    findings: list[Finding]
    #: with a group rule (zoo.data.groups): its groups per class (lint.group_summary)
    groups: dict[str, Any] | None = None

    def count(self, level: str) -> int:
        return sum(1 for f in self.findings if f.level == level)

    @property
    def exit_status(self) -> int:
        """0 clean, 1 findings (linters' convention; unreadable input is a ZooError: 2)."""
        return 1 if self.findings else 0

    @property
    def tasks(self) -> list[str]:
        """The tasks the data as read can serve (each task's own check), for `zoo check` to say."""
        served = []
        for name, task in TASKS.items():
            try:
                task.check(self.dataset)
            except ZooError:
                continue
            served.append(name)
        return served


# -- where things are --------------------------------------------------------------------------


def _record_file(rec: ImageRecord) -> str:
    return rec.source.file if rec.source is not None else str(rec.file or rec.id)


def _image_file(rec: ImageRecord) -> str:
    """The file holding the image's pixels (a labelme JSON's for its imageData): what a
    finding about the pixels names, never the annotation file several images share."""
    return str(rec.file if rec.file is not None else rec.embedded or _record_file(rec))


def _instance_where(rec: ImageRecord, inst: Instance) -> tuple[str, int | None]:
    if inst.source is not None:
        return inst.source.file, inst.source.shape
    return _record_file(rec), None


def _counted(dataset: Dataset) -> tuple[Counter, Counter]:
    """Instances per category name (ignored regions left out) and images per class name."""
    cats: Counter = Counter()
    classes: Counter = Counter()
    for rec in dataset.images:
        for inst in rec.instances:
            if not inst.ignore and inst.category >= 0:
                cats[dataset.categories[inst.category]] += 1
        for c in rec.labels:
            classes[dataset.classes[c]] += 1
    return cats, classes


# -- label names ---------------------------------------------------------------------------------


def normalised(name: str) -> str:
    """A label as annotators mean it: case, surrounding space and ``_``/``-``/space ignored."""
    return re.sub(r"[\s_\-]+", " ", name.casefold()).strip()


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (names are short: the plain dynamic programme is enough)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _typo_of(a: str, b: str) -> bool:
    """Whether ``a`` looks like a typo of ``b``: a small edit distance on names long enough
    for one (``rbc``/``wbc`` are two classes), and not a different number (``cell1``/``cell2``)."""
    na, nb = normalised(a), normalised(b)
    if min(len(na), len(nb)) < 5 or re.sub(r"\d", "", na) == re.sub(r"\d", "", nb):
        return False
    return edit_distance(na, nb) <= (2 if min(len(na), len(nb)) >= 10 else 1)


def look_alike(name: str, candidates: Counter | dict[str, int] | list[str]) -> tuple[str, bool] | None:
    """The candidate ``name`` is probably meant to be, and whether the match is exact up to
    case / spacing (True) or a likely typo (False); None when nothing is close."""
    same = [c for c in candidates if c != name and normalised(c) == normalised(name)]
    if same:
        return sorted(same, key=lambda c: (-_count(candidates, c), c != normalised(c), c))[0], True
    typos = [c for c in candidates if c != name and _typo_of(name, c)]
    if typos:
        return sorted(typos, key=lambda c: (-_count(candidates, c), c))[0], False
    return None


def _count(candidates, c) -> int:
    return candidates.get(c, 0) if isinstance(candidates, dict) else 0


def _canonical_of(name: str, counts: Counter) -> tuple[str, bool] | None:
    """The label ``name`` should be merged into: a look-alike used more often (a tie goes to
    the tidier spelling, then the sorted first), else None. A typo needs 3x the uses."""
    match = look_alike(name, counts)
    if match is None:
        return None
    other, exact = match
    n, m = counts[name], counts[other]
    if exact:
        tidier = (other == normalised(other), other) < (name == normalised(name), name)
        keep_other = m > n or (m == n and not tidier)
        return (other, True) if keep_other else None
    return (other, False) if m >= 3 * n else None


# -- the checks ----------------------------------------------------------------------------------


def check_reader_problems(ctx: LintContext) -> list[Finding]:
    """Everything the readers repaired or skipped (adapters/POLICY.md), as findings."""
    out = []
    for p in ctx.dataset.warnings:
        if KEPT_WITHOUT_PIXELS in p.reason:  # said image by image, as errors: check_images_without_pixels
            continue
        missing = "image not found" in p.reason or "without an image" in p.reason or "not found" in p.reason
        fix = ("put the image beside its annotation (or correct imagePath)" if missing
               else "correct it in your annotation tool; zoo skips or repairs it as described")
        out.append(Finding("missing-image" if missing else "reader", WARNING, p.source.file, p.source.shape,
                           p.reason, fix))
    return out


#: How a reader says it kept images it could not find, for scoring only (adapters/coco.py).
KEPT_WITHOUT_PIXELS = "kept for scoring (sizes from the JSON)"


def check_images_without_pixels(ctx: LintContext) -> list[Finding]:
    """Images known only from their annotation (a COCO entry whose file is not found): zoo run
    cannot train on them and refuses the data, so each is an error here."""
    return [Finding("missing-image", ERROR, _record_file(rec), None,
                    f"image '{rec.id}' not found; zoo run refuses data whose images are missing",
                    "put the image where the annotation says, or pass --images DIR (the folder that holds them)")
            for rec in ctx.dataset.images if not rec.has_pixels]


def check_near_duplicate_labels(ctx: LintContext) -> list[Finding]:
    """A rare label that looks like a frequent one ('Person' (1) beside 'person' (9))."""
    ds = ctx.dataset
    cats, classes = _counted(ds)
    out = []
    if ctx.declared_categories is None:
        merges = {n: m for n in cats if (m := _canonical_of(n, cats))}
        for rec in ds.images:
            for inst in rec.instances:
                name = ds.categories[inst.category] if inst.category >= 0 else None
                if name in merges:
                    out.append(_label_finding(name, cats, merges[name], *_instance_where(rec, inst)))
    if ctx.declared_classes is None:
        merges = {n: m for n in classes if (m := _canonical_of(n, classes))}
        for rec in ds.images:
            for c in rec.labels:
                if ds.classes[c] in merges:
                    out.append(_label_finding(ds.classes[c], classes, merges[ds.classes[c]], _record_file(rec), None))
    return out


def _label_finding(name: str, counts: Counter, merge: tuple[str, bool], file: str, shape: int | None) -> Finding:
    other, exact = merge
    return Finding("near-duplicate-label", ERROR if exact else WARNING, file, shape,
                   f"'{name}' ({counts[name]}) looks like '{other}' ({counts[other]})",
                   f"relabel as '{other}' (zoo check --fix, or --map '{name}={other}')", rename=(name, other))


def check_undeclared_labels(ctx: LintContext) -> list[Finding]:
    """Labels the --labels file or zoo.yaml does not list: zoo run would drop their shapes."""
    ds = ctx.dataset
    out = []
    if ctx.declared_categories is not None:
        allowed = set(ctx.declared_categories)
        for rec in ds.images:
            for inst in rec.instances:
                if inst.category >= 0 and ds.categories[inst.category] not in allowed:
                    name = ds.categories[inst.category]
                    out.append(_undeclared(name, ctx.declared_categories, ctx.declared_in, *_instance_where(rec, inst)))
    if ctx.declared_classes is not None:
        allowed = set(ctx.declared_classes)
        for rec in ds.images:
            for c in rec.labels:
                if ds.classes[c] not in allowed:
                    out.append(_undeclared(ds.classes[c], ctx.declared_classes, ctx.declared_in, _record_file(rec), None))
    return out


def _undeclared(name: str, declared: list[str], where: str, file: str, shape: int | None) -> Finding:
    match = look_alike(name, declared)
    msg = f"label '{name}' is not in {where}; zoo run skips it"
    if match is None:
        return Finding("undeclared-label", ERROR, file, shape, msg, f"add '{name}' to {where}, or relabel it")
    return Finding("undeclared-label", ERROR, file, shape, msg + f" (did you mean '{match[0]}'?)",
                   f"relabel as '{match[0]}' (zoo check --fix)", rename=(name, match[0]))


@dataclass(frozen=True, slots=True)
class PixelFacts:
    """What one decoding of an image tells the checks (:attr:`LintContext.pixels`)."""

    digest: str  # of the canonical pixels: the same image under two names
    kind: str  # depth and channels, "16-bit, 1 channel"
    constant: bool  # 99 % of its pixels hold one value
    modality: str | None  # DICOM Modality


def pixel_facts(rec: ImageRecord) -> PixelFacts | None:
    """None for an image that does not decode (the reader's finding, not these checks')."""
    import numpy as np

    try:
        d = rec.pixels()
    except Exception:  # noqa: BLE001 -- an unreadable image is the reader's finding, not this one's
        return None
    a = d.array
    digest = array_digest(a)
    depth = f"{a.dtype.itemsize * 8}-bit" if a.dtype.kind in "ui" else str(a.dtype)
    channels = 1 if a.ndim == 2 or (not d.deep and _grey(a)) else a.shape[2]
    lo, hi = np.percentile(a[::2, ::2], (0.5, 99.5))
    return PixelFacts(digest, f"{depth}, {channels} channel{'s' * (channels > 1)}", bool(lo == hi), d.modality)


def _grey(rgb) -> bool:
    """An 8-bit image stored as RGB whose three channels are one (a grey PNG decoded to RGB)."""
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def check_pixel_kinds(ctx: LintContext) -> list[Finding]:
    """Images of another bit depth or channel count than most (an 8-bit export among 16-bit
    scans: one intensity rule cannot map both), nearly constant images, and DICOMs of
    different modalities under one class (the model may learn the scanner, not the class)."""
    facts = {r.id: f for r in ctx.dataset.images if (f := ctx.pixels.get(r.id)) is not None}
    kinds = Counter(f.kind for f in facts.values())
    usual = kinds.most_common(1)[0][0] if kinds else None
    out = []
    for rec in ctx.dataset.images:
        f = facts.get(rec.id)
        if f is None:
            continue
        if f.kind != usual:
            out.append(Finding("pixel-depth", WARNING, _image_file(rec), None,
                               f"{f.kind} while {kinds[usual]} image(s) are {usual}",
                               "export every image alike (or pass --set intensity=... to map all the same way)"))
        if f.constant:
            out.append(Finding("constant-image", WARNING, _image_file(rec), None,
                               "nearly constant: 99% of its pixels hold one value (blank, or a failed export?)",
                               "look at it; delete it if it holds nothing"))
    for name, modalities in _modalities_per_class(ctx, facts).items():
        if len(modalities) > 1:
            listed = ", ".join(f"{m} ({len(ids)})" for m, ids in sorted(modalities.items()))
            first = ctx.dataset.image(sorted(modalities.items(), key=lambda kv: len(kv[1]))[0][1][0])
            out.append(Finding("mixed-modality", WARNING, _image_file(first), None,
                               f"class '{name}' mixes DICOM modalities: {listed}",
                               "train one modality per model, or make sure every class has each modality"))
    return out


def _modalities_per_class(ctx: LintContext, facts: dict[str, PixelFacts]) -> dict[str, dict[str, list[str]]]:
    ds = ctx.dataset
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for rec in ds.images:
        f = facts.get(rec.id)
        if f is None or f.modality is None:
            continue
        for name in {*(ds.classes[c] for c in rec.labels), *(ds.categories[i.category] for i in rec.instances
                                                              if not i.ignore and i.category >= 0)}:
            out[name][f.modality].append(rec.id)
    return out


def _annotation_key(rec: ImageRecord) -> tuple:
    return (tuple(sorted(rec.labels)), tuple(sorted(map(_instance_key, rec.instances))))


def _instance_key(inst: Instance) -> tuple:
    r = lambda vs: tuple(round(float(v), 3) for v in vs)  # noqa: E731
    return (inst.category, inst.ignore, r(inst.bbox), tuple(r(p) for p in inst.polygons),
            None if inst.mask is None else str(inst.mask.get("counts")),
            None if not inst.keypoints else tuple(r(k) for k in inst.keypoints))


def check_duplicate_images(ctx: LintContext) -> list[Finding]:
    """The same pixels under two names (they would leak between train and val)."""
    ds = ctx.dataset
    seen: dict[str, ImageRecord] = {}
    out = []
    for rec in ds.images:
        facts = ctx.pixels.get(rec.id)
        if facts is None:
            continue
        digest = facts.digest
        first = seen.setdefault(digest, rec)
        if first is rec:
            continue
        msg = f"same pixels as {_image_file(first)}"
        if _annotation_key(first) == _annotation_key(rec):
            out.append(Finding("duplicate-image", WARNING, _image_file(rec), None, msg + ", annotated the same",
                               "delete this copy (zoo check --fix drops it)", drop=("image", rec.id)))
        else:
            out.append(Finding("duplicate-image", WARNING, _image_file(rec), None, msg + ", annotated differently",
                               "keep one copy, with the right annotation"))
    return out


def _shape_iou(rec: ImageRecord, a: Instance, b: Instance) -> float:
    """Box IoU; for two outlines (polygons, masks) their pixels' IoU."""
    iou = box_iou(a.bbox, b.bbox)
    if iou <= DUPLICATE_IOU or not ((a.polygons or a.mask) and (b.polygons or b.mask)):
        return iou
    ma, mb = instance_mask(a, rec.height, rec.width), instance_mask(b, rec.height, rec.width)
    union = (ma | mb).sum()
    return float((ma & mb).sum() / union) if union else iou


def check_duplicate_shapes(ctx: LintContext) -> list[Finding]:
    """One object drawn twice: same label, IoU > 0.95 on one image."""
    out = []
    for rec in ctx.dataset.images:
        by_cat: dict[int, list[int]] = defaultdict(list)
        for k, inst in enumerate(rec.instances):
            by_cat[inst.category].append(k)
        for ks in by_cat.values():
            ks.sort(key=lambda k: (rec.instances[k].bbox[0], k))  # a sweep along x: only overlapping boxes are paired
            dropped: set[int] = set()
            for i, ka in enumerate(ks):
                for kb in ks[i + 1:]:
                    if rec.instances[kb].bbox[0] >= rec.instances[ka].bbox[2]:
                        break
                    if kb in dropped or ka in dropped:
                        continue
                    lo, hi = min(ka, kb), max(ka, kb)  # the later shape is the copy
                    a, b = rec.instances[lo], rec.instances[hi]
                    iou = _shape_iou(rec, a, b)
                    if iou <= DUPLICATE_IOU:
                        continue
                    file, shape = _instance_where(rec, b)
                    first = _instance_where(rec, a)[1]
                    if _instance_key(a) == _instance_key(b):
                        dropped.add(hi)
                        out.append(Finding("duplicate-shape", WARNING, file, shape, f"exact copy of shape {first}",
                                           "delete it (zoo check --fix drops it)", drop=("instance", rec.id, hi)))
                    else:
                        out.append(Finding("duplicate-shape", WARNING, file, shape,
                                           f"overlaps shape {first} of the same label (IoU {iou:.2f})",
                                           "delete one of the two"))
    return out


def check_unannotated_images(ctx: LintContext) -> list[Finding]:
    """Images in the folder that no annotation covers (zoo run trains without them)."""
    return [Finding("unannotated-image", WARNING, str(f), None, "image has no annotation",
                    "annotate it (zoo predict --run RUN DIR --rank says which to do first), or move it out")
            for f in unannotated_images(ctx.dataset, ctx.path)]


def check_nothing_annotated(ctx: LintContext) -> list[Finding]:
    """A folder in which no image has a label or an object: new images, or annotations in a
    format zoo did not recognise. "clean" would be the wrong word for it."""
    images = ctx.dataset.images
    if not images or any(r.labels or r.instances for r in images):
        return []
    return [Finding("nothing-annotated", WARNING, str(ctx.path), None,
                    f"none of its {len(images)} image(s) has a label or an object (read as {ctx.dataset.format})",
                    "new images to label? `zoo predict --run RUN DIR --rank` says which first; annotations "
                    "zoo did not find? name their format with --from")]


def unannotated_images(dataset: Dataset, path: Path | None = None) -> list[Path]:
    """Image files below the dataset's folder that are not one of its records, sorted."""
    root = Path(path) if path is not None else dataset.root
    if root is None or not root.is_dir():
        return []
    used = {os.path.realpath(r.file) for r in dataset.images if r.file is not None}
    # the annotation files themselves, when they are images (mask PNGs), are no unannotated images
    sources = {r.source.file for r in dataset.images if r.source is not None}
    sources |= {i.source.file for r in dataset.images for i in r.instances if i.source is not None}
    masks = {os.path.realpath(f) for f in sources} - used
    used |= masks
    # ... nor are the numbered siblings of a mask (BUSI's x_mask_1.png beside x_mask.png: one mask in two files)
    used_stems = {os.path.splitext(m)[0].lower() for m in masks if os.path.splitext(m)[1].lower() in IMAGE_SUFFIXES}
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for fn in sorted(files):
            if os.path.splitext(fn)[1].lower() in IMAGE_SUFFIXES:
                f = os.path.join(dirpath, fn)
                real = os.path.realpath(f)
                if real not in used and re.sub(r"_\d+$", "", os.path.splitext(real)[0]).lower() not in used_stems:
                    out.append(Path(f))
    return out


def check_tiny_instances(ctx: LintContext) -> list[Finding]:
    """Objects a few pixels big: nothing a model can learn from (often a slipped click)."""
    out = []
    for rec in ctx.dataset.images:
        for inst in rec.instances:
            if inst.ignore:
                continue
            w, h = inst.bbox[2] - inst.bbox[0], inst.bbox[3] - inst.bbox[1]
            if min(w, h) < MIN_SIDE or w * h < MIN_AREA:
                out.append(Finding("tiny-instance", WARNING, *_instance_where(rec, inst),
                                   f"object is {w:.3g} x {h:.3g} px", "delete it if it is a slip, or mark it __ignore__"))
    return out


def check_class_balance(ctx: LintContext) -> list[Finding]:
    """Heavy imbalance, and classes too rare for the split asked for (--val / --test)."""
    ds = ctx.dataset
    cats, classes = _counted(ds)
    use_classes = ctx.task is not None and ctx.task.answer_kind == "label"  # a class per image
    use_cats = not use_classes and (ctx.task is not None or ds.categories)
    out = []
    # a misspelt or undeclared label is already a finding: it is not a rare class as well
    if use_cats:
        kept = _meant_labels(cats, ctx.declared_categories)
        out += _balance(kept, _images_per(ds, classes=False), "instance", ctx)
    if use_classes or (ctx.task is None and ds.classes):
        kept = _meant_labels(classes, ctx.declared_classes)
        out += _balance(kept, _images_per(ds, classes=True), "image", ctx)
    return out


def _meant_labels(counts: Counter, declared: list[str] | None) -> Counter:
    """The counts without the labels other checks call mistakes (look-alikes, undeclared)."""
    if declared is not None:
        return Counter({n: c for n, c in counts.items() if n in set(declared)})
    return Counter({n: c for n, c in counts.items() if _canonical_of(n, counts) is None})


def _images_per(ds: Dataset, classes: bool) -> Counter:
    n: Counter = Counter()
    for rec in ds.images:
        n.update(_names_on(ds, rec, classes))
    return n


def _names_on(ds: Dataset, rec: ImageRecord, classes: bool) -> set[str]:
    """The image's classes (``classes``) or the categories of its objects (not ignored ones)."""
    return ({ds.classes[c] for c in rec.labels} if classes else
            {ds.categories[i.category] for i in rec.instances if not i.ignore and i.category >= 0})


def _balance(counts: Counter, images: Counter, unit: str, ctx: LintContext) -> list[Finding]:
    out = []
    where = str(ctx.path)
    if not counts:
        return out
    top, n_top = counts.most_common(1)[0]
    # one image in every held-out split on average (val, and test when asked for)
    smallest = min(f for f in (ctx.val, ctx.test) if f > 0)
    need = math.ceil(1 / smallest)
    split = f"--val {ctx.val:g}" + (f" --test {ctx.test:g}" if ctx.test > 0 else "")
    for name, n in sorted(counts.items()):
        if n_top >= IMBALANCE_RATIO * n:
            out.append(Finding("class-imbalance", WARNING, where, None,
                               f"'{name}' has {n} {unit}(s) against '{top}' {n_top} ({n_top / n:.0f}x fewer)",
                               f"annotate more '{name}', or merge it into another class"))
        k = images[name]
        if k < 2:
            out.append(Finding("too-few-to-split", ERROR, where, None,
                               f"'{name}' is on {k} image(s): it cannot be in both train and val",
                               f"annotate '{name}' on more images (at least {need} for {split})"))
        elif k < need:
            out.append(Finding("too-few-to-split", WARNING, where, None,
                               f"'{name}' is on {k} images: {split} expects {k * smallest:.1f} of them "
                               "in a held-out split, so it may not be scored", f"annotate '{name}' on at least {need} images"))
    return out


# -- groups (patients, studies, volumes; zoo.data.groups) ---------------------------------------


def check_split_leaks(ctx: LintContext) -> list[Finding]:
    """The data's own split putting one group, or one duplicate image, on both sides."""
    parts = data_split_parts(ctx.dataset)
    if parts is None:
        return []
    return [Finding("split-leak", ERROR, str(ctx.path), None, leak.describe(),
                    "move these images to one side (zoo run refuses this split; --allow-leak goes on anyway)")
            for leak in leaks(ctx.grouping, parts)]


def groups_per_class(ctx: LintContext) -> dict[str, set[str]]:
    """Class (or category) -> the groups holding it."""
    ds, g = ctx.dataset, ctx.grouping
    classes = (ctx.task.answer_kind == "label") if ctx.task is not None else not ds.categories
    out: dict[str, set[str]] = defaultdict(set)
    for rec in ds.images:
        for name in _names_on(ds, rec, classes):
            out[name].add(g.of[rec.id])
    return out


def group_summary(ctx: LintContext) -> dict[str, Any] | None:
    """With a group rule: the rule, the number of groups and the groups per class (zoo check shows it)."""
    g = ctx.grouping
    if not g.ruled:
        return None
    per_class = {name: len(gs) for name, gs in sorted(groups_per_class(ctx).items())}
    return {"rule": g.rule, "groups": g.count(g.of), "per_class": per_class, "duplicates": len(g.duplicates)}


def check_groups_per_class(ctx: LintContext) -> list[Finding]:
    """With a group rule: classes in too few groups to be in both train and val (a group is
    never split)."""
    if not ctx.grouping.ruled:
        return []
    return [Finding("too-few-groups", ERROR, str(ctx.path), None,
                    f"'{name}' is in 1 group ({next(iter(gs))}) only: with every group whole it cannot be in "
                    "both train and val", f"add '{name}' from more patients (groups)")
            for name, gs in sorted(groups_per_class(ctx).items()) if len(gs) < 2]


def check_near_leaks(ctx: LintContext) -> list[Finding]:
    """Across the data's own split, two groups whose names differ only in case, separators or
    leading zeros (``P7`` / ``p-007``): likely one patient written two ways."""
    parts = data_split_parts(ctx.dataset)
    g = ctx.grouping
    if parts is None or not g.ruled:
        return []
    sides: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))  # key -> group -> parts
    for part, ids in parts.items():
        for image_id in ids:
            group = g.of.get(image_id, image_id)
            sides[_group_key(group)][group].add(part)
    out = []
    for key, groups in sorted(sides.items()):
        if len(groups) > 1 and len(set().union(*groups.values())) > 1:
            names = " / ".join(f"'{name}' ({', '.join(sorted(p))})" for name, p in sorted(groups.items()))
            out.append(Finding("near-leak", WARNING, str(ctx.path), None,
                               f"groups {names} look like one patient across the split",
                               "if they are one, give them one name (then zoo run keeps them on one side)"))
    return out


def _group_key(name: str) -> str:
    """A group name without case, separators and leading zeros of its numbers."""
    parts = re.findall(r"[a-z]+|\d+", name.lower())
    return "".join(p.lstrip("0") or "0" if p.isdigit() else p for p in parts)


def check_keypoints_outside(ctx: LintContext) -> list[Finding]:
    """Keypoints off their object's box (a wrong group_id, or a point dragged away)."""
    ds = ctx.dataset
    out = []
    for rec in ds.images:
        for inst in rec.instances:
            x0, y0, x1, y1 = inst.bbox
            for name, kp in zip(ds.keypoint_names, inst.keypoints or []):
                x, y, v = kp
                if v > 0 and not (x0 - 1 <= x <= x1 + 1 and y0 - 1 <= y <= y1 + 1):
                    out.append(Finding("keypoint-outside", WARNING, *_instance_where(rec, inst),
                                       f"keypoint '{name}' at ({x:g}, {y:g}) lies outside its object "
                                       f"({x0:g}, {y0:g})-({x1:g}, {y1:g})",
                                       "move the point onto its object, or give it the object's group_id"))
    return out


CHECKS: list[Callable[[LintContext], list[Finding]]] = [
    check_reader_problems,
    check_images_without_pixels,
    check_near_duplicate_labels,
    check_undeclared_labels,
    check_duplicate_images,
    check_pixel_kinds,
    check_duplicate_shapes,
    check_unannotated_images,
    check_nothing_annotated,
    check_tiny_instances,
    check_class_balance,
    check_keypoints_outside,
    check_split_leaks,
    check_groups_per_class,
    check_near_leaks,
]


# -- the pipeline --------------------------------------------------------------------------------


def declared_vocabularies(path: Path, labels: str | Path | None, dataset: Dataset) -> tuple[list | None, list | None, str]:
    """The label lists the user gave (--labels, else zoo.yaml), as :class:`zoo.data.builder.DatasetBuilder`
    applies them: (categories, classes, where they come from)."""
    if labels is not None:
        names = LabelList.read(labels).names
        shapes_found = any(r.instances for r in dataset.images)
        if shapes_found or not dataset.classes:
            return names, None, str(labels)
        return None, names, str(labels)
    config = load_dataset_config(path)
    where = str(config.get("_file", ""))
    return config.get("categories"), config.get("classes"), where


def lint_dataset(ctx: LintContext, checks=None) -> list[Finding]:
    findings = []
    for check in checks or CHECKS:
        findings += check(ctx)
    return findings


def lint_folder(path: str | Path, *, fmt: str = "auto", labels: str | Path | None = None, task: str | None = None,
                val: float = 0.2, test: float = 0.0, images: str | Path | None = None,
                group: str | None = None, registry=None) -> LintReport:
    """Read ``path`` (every label kept, by ``registry``'s readers) and run every check."""
    path = Path(path)
    if not 0 < val < 1 or not 0 <= test < 1 or val + test >= 1:
        raise ZooError(f"--val {val:g} / --test {test:g}: expected fractions with val > 0 and val + test < 1")
    dataset = read_dataset(path, fmt=fmt, labels=EVERY_LABEL, images=images, registry=registry)
    cats, classes, where = declared_vocabularies(path, labels, dataset)
    t = None
    if task is not None:
        t = get_task(task)
        t.check(dataset)
    ctx = LintContext(dataset, path, cats, classes, where, t, val, test, group)
    return LintReport(dataset, lint_dataset(ctx), group_summary(ctx))


def refuse_errors(path: str | Path, *, fmt: str = "auto", labels: str | Path | None = None, task: str | None = None,
                  val: float = 0.2, test: float = 0.0, images: str | Path | None = None,
                  group: str | None = None, registry=None) -> None:
    """``zoo run --strict``: a ZooError when ``zoo check`` finds anything of error level."""
    report = lint_folder(path, fmt=fmt, labels=labels, task=task, val=val, test=test, images=images, group=group,
                         registry=registry)
    errors = [f for f in report.findings if f.level == ERROR]
    if errors:
        first = errors[0]
        where = first.file if first.shape is None else f"{first.file} (shape {first.shape})"
        raise ZooError(f"--strict: {len(errors)} error(s) in the data, first: {where}: {first.message}; "
                       f"run `zoo check {path}` for all of them")
