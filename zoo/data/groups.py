"""Groups: the patient, study, volume, video or slide each image belongs to, so that splits,
folds and intervals keep them whole.

Medical sets hold several images per patient (slices of one scan, frames of one video, crops
of one slide). Split by image, one patient lands in train and in val and the score measures
memory, not generalisation. Where an image's group comes from, first found wins:

* ``--group REGEX``: the first capture group of the pattern searched in the image's path
  relative to the dataset (``'(P\\d+)_'`` on ``P012_slice3.png`` is ``P012``);
* ``zoo.yaml`` at the dataset root: ``group: REGEX`` (the same), or ``groups: groups.csv``
  (a CSV ``image,group``; ``image`` names a file as the dataset holds it, its path without
  extension, or its bare file name when that is unique);
* the reader (:attr:`zoo.dataset.ImageRecord.group`): a DICOM file's PatientID (else its
  StudyInstanceUID), every slice of a NIfTI volume;
* a video folder: frames named by 8-digit number in a sub-folder (``clip/00000042.jpg``, as
  labelme's video annotation workflow extracts them) are one group per folder;
* none: each image is its own group.

An image the pattern does not match, or the CSV does not name, is refused (one line naming
it): a silent "own group" would be a leak. Whatever the rule says, exact duplicates (the
same pixels under two names) share a group; their groups are merged into one named
``A+B``. Duplicates are found cheaply: only files of equal byte size can be byte-identical,
and only those are read and hashed; two files of equal size but different bytes (DICOMs that
differ only in their tags, uncompressed formats) are decoded and their pixels compared. The
same pixels in two different encodings (a PNG re-saved as JPEG) are left to ``zoo check``,
which decodes every image.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from zoo.data.dataset_config import load_dataset_config
from zoo.dataset import Dataset, ImageRecord, embedded_image_bytes
from zoo.errors import DataError, ZooError

#: The rule's text when no group rule applies.
NO_GROUPS = "none (each image is its own group)"


@dataclass
class Grouping:
    """Every image's group, how it was decided, and the duplicate images merged into one."""

    rule: str
    of: dict[str, str]  # image id -> group
    duplicates: list[list[str]] = field(default_factory=list)  # image ids with the same pixels

    @property
    def grouped(self) -> bool:
        """Whether any group holds more than one image (else splits are by image, as before)."""
        return len(set(self.of.values())) < len(self.of)

    @property
    def ruled(self) -> bool:
        """Whether a group rule applies (--group, zoo.yaml, the reader), not only duplicates."""
        return self.rule != NO_GROUPS

    def members(self, ids: Iterable[str] | None = None) -> dict[str, list[str]]:
        """Group -> its image ids (among ``ids``, default all), sorted."""
        out: dict[str, list[str]] = defaultdict(list)
        for image_id in sorted(self.of if ids is None else ids):
            out[self.of.get(image_id, image_id)].append(image_id)
        return dict(out)

    def count(self, ids: Iterable[str]) -> int:
        """How many groups ``ids`` span."""
        return len({self.of.get(i, i) for i in ids})

    def shared(self, ids: Iterable[str] | None = None) -> dict[str, list[str]]:
        """The groups of more than one image among ``ids`` (what split.json lists; the rest
        are one image each)."""
        return {g: members for g, members in self.members(ids).items() if len(members) > 1}


def group_images(dataset: Dataset, pattern: str | None = None) -> Grouping:
    """The :class:`Grouping` of ``dataset``'s images (see module doc)."""
    rule, given = given_groups(dataset, pattern)
    duplicates = duplicate_images(dataset.images)
    return Grouping(rule, merged(given, duplicates), duplicates)


def given_groups(dataset: Dataset, pattern: str | None) -> tuple[str, dict[str, str]]:
    """(the rule, image id -> group) from ``--group``, zoo.yaml or the reader, before duplicates."""
    if pattern:
        return f"--group '{pattern}' on the image path", groups_by_pattern(dataset, pattern, "--group")
    config = _config(dataset)
    if config.get("group"):
        where = f"{config['_file']}: group"
        return f"zoo.yaml group: '{config['group']}' on the image path", groups_by_pattern(dataset, config["group"], where)
    if config.get("groups"):
        csv_path = Path(config["_file"]).parent / str(config["groups"])
        return f"zoo.yaml groups: {config['groups']}", groups_from_csv(dataset, csv_path)
    if any(r.group is not None for r in dataset.images):
        rule = f"set by the {dataset.format or 'dataset'} reader (DICOM PatientID, NIfTI volume, ...)"
        return rule, {r.id: r.group if r.group is not None else r.id for r in dataset.images}
    videos = video_folders(dataset.images)
    if videos:
        rule = "video folders (frames named by 8-digit number, as labelme's video-toimg writes them): one group each"
        return rule, {r.id: videos.get(r.id, r.id) for r in dataset.images}
    return NO_GROUPS, {r.id: r.id for r in dataset.images}


#: A frame of a video split into images by labelme's video annotation workflow (``video-toimg
#: clip.mp4`` writes ``clip/00000000.jpg``, ``clip/00000001.jpg``, ...).
VIDEO_FRAME = re.compile(r"(.+)/\d{8}")


def video_folders(records: list[ImageRecord]) -> dict[str, str]:
    """Image id -> its folder, for frames of a video folder: a sub-folder holding two or more
    images named by 8-digit frame numbers (neighbouring frames are near-copies of each other)."""
    folder_of = {r.id: m.group(1) for r in records if (m := VIDEO_FRAME.fullmatch(r.id))}
    frames = Counter(folder_of.values())
    return {i: f"video {f}" for i, f in folder_of.items() if frames[f] > 1}


def _config(dataset: Dataset) -> dict:
    if dataset.root is None:
        return {}
    return load_dataset_config(Path(dataset.root))


def relative_path(rec: ImageRecord) -> str:
    """The image's path relative to the dataset, POSIX (what a group pattern is matched on)."""
    return rec.id + rec.suffix


def groups_by_pattern(dataset: Dataset, pattern: str, where: str) -> dict[str, str]:
    """Image id -> the pattern's first capture group in its relative path; every image must match."""
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise ZooError(f"{where} '{pattern}': not a regular expression ({e})") from None
    if rx.groups < 1:
        raise ZooError(f"{where} '{pattern}': needs a capture group, the part naming the group, e.g. '(P\\d+)_'")
    out, missed = {}, []
    for rec in dataset.images:
        m = rx.search(relative_path(rec))
        if m is None or not m.group(1):
            missed.append(relative_path(rec))
        else:
            out[rec.id] = m.group(1)
    if missed:
        raise ZooError(f"{where} '{pattern}': {len(missed)} image(s) do not match, e.g. {missed[0]}; "
                       "write a pattern that names the group of every image")
    return out


def groups_from_csv(dataset: Dataset, path: Path) -> dict[str, str]:
    """Image id -> group from a CSV ``image,group`` (a header row is optional)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if row and any(c.strip() for c in row)]
    except OSError as e:
        raise DataError(path, f"cannot read the groups file ({e.strerror or e})") from None
    find = _image_names(dataset)
    out: dict[str, str] = {}
    for n, row in enumerate(rows, start=1):
        if len(row) < 2 or not row[1].strip():
            raise DataError(path, f"line {n}: expected image,group")
        rid = find(row[0].strip())
        if rid is None:
            if n == 1:  # a header row names no image
                continue
            raise DataError(path, f"line {n}: '{row[0].strip()}' is not an image of the dataset")
        out[rid] = row[1].strip()
    missing = [relative_path(r) for r in dataset.images if r.id not in out]
    if missing:
        raise DataError(path, f"{len(missing)} image(s) have no group, e.g. {missing[0]}; give every image a row")
    return out


def _image_names(dataset: Dataset):
    """A function: a name from a groups file -> the record id it names (or None)."""
    exact: dict[str, str] = {}
    base: dict[str, list[str]] = defaultdict(list)
    for r in dataset.images:
        for key in (r.id, relative_path(r)):
            exact[key] = r.id
        base[Path(r.id).name].append(r.id)
        base[Path(relative_path(r)).name].append(r.id)

    def find(name: str) -> str | None:
        name = name.replace("\\", "/").lstrip("./")
        if name in exact:
            return exact[name]
        stem = name.rsplit(".", 1)[0] if "." in Path(name).name else name
        if stem in exact:
            return exact[stem]
        hits = set(base.get(Path(name).name, []))
        return hits.pop() if len(hits) == 1 else None

    return find


def merged(given: dict[str, str], duplicates: list[list[str]]) -> dict[str, str]:
    """``given`` with the groups of each set of duplicates merged into one (named ``A+B``)."""
    parent: dict[str, str] = {}

    def root(g: str) -> str:
        while parent.get(g, g) != g:
            g = parent[g]
        return g

    for ids in duplicates:
        roots = sorted({root(given[i]) for i in ids})
        for g in roots[1:]:
            parent[g] = roots[0]
    if not parent:
        return dict(given)
    parts: dict[str, set[str]] = defaultdict(set)
    for g in set(given.values()):
        parts[root(g)].add(g)
    name = {r: "+".join(sorted(gs)) for r, gs in parts.items()}
    return {i: name[root(g)] for i, g in given.items()}


# -- duplicates ----------------------------------------------------------------------------------


def pixel_digest(rec: ImageRecord) -> str | None:
    """A digest of the image's canonical pixels (full range, :meth:`ImageRecord.pixels`);
    None when they cannot be read."""
    try:
        return array_digest(rec.pixels().array)
    except Exception:  # noqa: BLE001 -- an unreadable image is the reader's finding, not this one's
        return None


def array_digest(a) -> str:
    """The digest that decides "the same pixels": shape, type and values (zoo check uses it too)."""
    import numpy as np

    return hashlib.blake2b(f"{a.shape}{a.dtype}".encode() + np.ascontiguousarray(a).tobytes(),
                           digest_size=16).hexdigest()


def duplicate_images(records: list[ImageRecord]) -> list[list[str]]:
    """Sets (two or more) of image ids with the same pixels; see the module doc for how.

    Records that share one file (the slices or frames of one volume or video) are not
    compared: their pixels are different parts of it, and its reader groups them."""
    files = Counter(rec.file for rec in records if rec.file is not None)
    by_size: dict[int, list[ImageRecord]] = defaultdict(list)
    for rec in records:
        if rec.file is not None and files[rec.file] > 1:
            continue
        size = _byte_size(rec)
        if size is not None:
            by_size[size].append(rec)
    out = []
    for same_size in by_size.values():
        if len(same_size) > 1:
            out += _identical(same_size)
    return sorted(out)


def _byte_size(rec: ImageRecord) -> int | None:
    if rec.file is not None:
        try:
            return rec.file.stat().st_size
        except OSError:
            return None
    return len(embedded_image_bytes(rec.embedded)) if rec.embedded is not None else None


def _image_bytes(rec: ImageRecord) -> bytes:
    return rec.file.read_bytes() if rec.file is not None else embedded_image_bytes(rec.embedded)


def _identical(records: list[ImageRecord]) -> list[list[str]]:
    """The duplicate sets among images of one byte size: same bytes, else the same pixels."""
    by_bytes: dict[str, list[str]] = defaultdict(list)
    first: dict[str, ImageRecord] = {}
    for rec in records:
        try:
            digest = hashlib.blake2b(_image_bytes(rec), digest_size=16).hexdigest()
        except OSError:
            continue
        by_bytes[digest].append(rec.id)
        first.setdefault(digest, rec)
    if len(by_bytes) == 1:
        return [ids for ids in by_bytes.values() if len(ids) > 1]
    # different bytes of one size: compare the decoded pixels, one decode per distinct file
    by_pixels: dict[str, list[str]] = defaultdict(list)
    for digest, ids in by_bytes.items():
        pixels = pixel_digest(first[digest])
        by_pixels[pixels or digest].extend(ids)
    return [sorted(ids) for ids in by_pixels.values() if len(ids) > 1]


# -- leaks ---------------------------------------------------------------------------------------


@dataclass
class Leak:
    """One group (or one set of duplicate images) found in more than one part of a split."""

    group: str
    parts: dict[str, list[str]]  # part -> the group's images there
    duplicate: bool  # the images are the same pixels (not only the same group)

    def describe(self) -> str:
        where = " and ".join(f"{part} ({ids[0]}{f' +{len(ids) - 1}' if len(ids) > 1 else ''})"
                             for part, ids in self.parts.items())
        what = "the same image (same pixels)" if self.duplicate else f"group '{self.group}'"
        return f"{what} is in {where}"


def leaks(grouping: Grouping, parts: dict[str, list[str]]) -> list[Leak]:
    """The groups (and duplicates) that ``parts`` (e.g. train / val / test) split apart."""
    found: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for part, ids in parts.items():
        for image_id in ids:
            found[grouping.of.get(image_id, image_id)][part].append(image_id)
    dup_of = {i: k for k, ids in enumerate(grouping.duplicates) for i in ids}
    out = []
    for group, where in sorted(found.items()):
        if len(where) < 2:
            continue
        # a duplicate leak: one set of identical images with copies in two parts
        parts_of_set: dict[int, set[str]] = defaultdict(set)
        for part, ids in where.items():
            for i in ids:
                if i in dup_of:
                    parts_of_set[dup_of[i]].add(part)
        duplicate = any(len(p) > 1 for p in parts_of_set.values())
        out.append(Leak(group, {p: sorted(v) for p, v in where.items()}, duplicate))
    return out


def refuse_leaks(found: list[Leak], where: str, allow: bool) -> list[str]:
    """A ZooError naming the first leak, unless ``allow`` (``--allow-leak``): then each leak
    as one line, for the outputs to state."""
    if not found:
        return []
    if not allow:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ZooError(f"{where}: {found[0].describe()}{more}: the score would measure memory, not "
                       "generalisation; move the images to one side, or pass --allow-leak to go on anyway")
    return [f.describe() for f in found]
