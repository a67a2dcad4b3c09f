"""Class folders (classify): ``ROOT/<class>/<image>``, or ``ROOT/<split>/<class>/<image>``
with split folders named train / val / valid / validation / test.

Also the reader of last resort for a folder of images with no annotations at all (LabelImg
before anyone labelled): images directly in ROOT are read with no class and no objects.
"""

from __future__ import annotations

from pathlib import Path

from zoo.adapters.common import image_size
from zoo.data.builder import SPLIT_FOLDERS, DatasetBuilder, DraftRecord, warn
from zoo.dataset import Dataset, ImageRecord, Problem, Source
from zoo.errors import DataError
from zoo.files import IMAGE_SUFFIXES


def _images(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                  key=lambda p: p.relative_to(root).as_posix())


ANNOTATION_SUFFIXES = (".json", ".xml", ".yaml", ".yml")


def holds_annotation_files(root: Path, limit: int = 2000) -> bool:
    """Does the folder hold files that look like annotations (JSON, XML, YAML, or a .txt
    beside an image of its stem)? Then it is not a folder of unannotated images: its
    annotations were not understood by any reader, and reading it as class folders would
    drop them without a word."""
    stems = set()
    txts = []
    for k, p in enumerate(root.rglob("*")):
        if k > limit:
            break
        suffix = p.suffix.lower()
        if suffix in ANNOTATION_SUFFIXES and p.name != "zoo.yaml":  # zoo.yaml: the class order
            return True
        if suffix == ".txt":
            txts.append(p.with_suffix(""))
        elif suffix in IMAGE_SUFFIXES:
            stems.add(p.with_suffix(""))
    return any(t in stems or t.name == "classes" for t in txts)


def sniff(path: Path) -> float:
    path = Path(path)
    if not path.is_dir() or holds_annotation_files(path):
        return 0.0
    subdirs = [d for d in path.iterdir() if d.is_dir()]
    for d in subdirs:
        for f in d.iterdir():
            if f.suffix.lower() in IMAGE_SUFFIXES:
                return 0.5
            if f.is_dir() and d.name.lower() in SPLIT_FOLDERS:
                if any(g.suffix.lower() in IMAGE_SUFFIXES for g in f.iterdir()):
                    return 0.5
    if any(f.suffix.lower() in IMAGE_SUFFIXES for f in path.iterdir()):
        return 0.1  # images only, nothing annotated yet
    return 0.0


def read(path: str | Path, *, labels=None) -> Dataset:
    from zoo.progress import track

    root = Path(path)
    if not root.is_dir():
        raise DataError(root, "class folders are a folder of <class>/<image> folders")
    warnings: list[Problem] = []
    records = []
    splits: dict[str, list[str]] = {}
    seen: dict[str, Path] = {}
    files = _images(root)
    if not files:
        raise DataError(root, "holds no images")
    for img in track(files, "reading class folders", total=len(files)) if len(files) > 200 else files:
        parts = img.relative_to(root).parts
        split = SPLIT_FOLDERS.get(parts[0].lower()) if len(parts) >= 3 else None
        cls_parts = parts[1:-1] if split else parts[:-1]
        rid = img.relative_to(root).with_suffix("").as_posix()
        if rid in seen:
            warn(warnings, img, f"shares its name with {seen[rid].name} (same stem); only the first is read")
            continue
        seen[rid] = img
        try:
            w, h = image_size(img)
        except DataError as e:
            warn(warnings, img, f"{e.reason}; skipped")
            continue
        labels_of = [cls_parts[0]] if cls_parts else []
        records.append(DraftRecord(ImageRecord(id=rid, width=w, height=h, file=img, source=Source(str(img))),
                                   classes=labels_of))
        if split:
            splits.setdefault(split, []).append(rid)
    builder = DatasetBuilder(root, "folders", labels=labels, splits=splits or None, records=records, warnings=warnings)
    return builder.build()
