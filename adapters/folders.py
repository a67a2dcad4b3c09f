"""Class folders (classify): ``ROOT/<class>/<image>``, or ``ROOT/<split>/<class>/<image>``
with split folders named train / val / valid / validation / test.

Folders named like the parts of an image + mask set (``images/``, ``labels/``, ``masks/``,
``gt/``, ``annotations/``, ...) or "images" that are mostly one- or two-valued PNGs (masks)
are refused with a hint: read as classes they would train a classifier on masks.

Also the reader of last resort for a folder of images with no annotations at all (LabelImg
before anyone labelled): images directly in ROOT are read with no class and no objects.
"""

from __future__ import annotations

from pathlib import Path

from zoo.adapters.common import image_frames, image_size
from zoo.data.builder import DatasetBuilder, DraftRecord, SPLIT_FOLDERS, warn
from zoo.data.reading import declined
from zoo.dataset import Dataset, ImageRecord, Problem, Source
from zoo.errors import DataError
from zoo.files import IMAGE_SUFFIXES, is_image_file
from zoo.progress import track


def _images(root: Path) -> list[Path]:
    """Every image below ``root``, DICOM files without an extension too."""
    return sorted((p for p in root.rglob("*") if p.is_file() and is_image_file(p)),
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


#: Folder names that are parts of an image + mask set, never classes.
NOT_CLASSES = {"image", "images", "img", "imgs", "label", "labels", "mask", "masks", "gt", "ground_truth",
               "groundtruth", "annotation", "annotations", "jpegimages", "segmentationclass", "segmentationobject"}


def mask_set_hint(root: Path, files: list[Path]) -> str | None:
    """Why ``root`` is an image + mask set rather than class folders (None: it is not)."""
    folders = sorted({part for f in files for part in f.relative_to(root).parts[:-1] if part.lower() in NOT_CLASSES})
    if folders:
        return (f"the folders {', '.join(f + '/' for f in folders[:4])} are parts of an image + mask set, "
                "not classes; read it with --from masks (or --from objects: one mask per object)")
    pngs = [f for f in files if f.suffix.lower() in (".png", ".gif", ".bmp", ".tif", ".tiff")][:20]
    two_valued = [f for f in pngs if _at_most_two_values(f)]
    if pngs and len(two_valued) * 2 > len(pngs):
        return (f"{len(two_valued)} of the first {len(pngs)} images (e.g. {two_valued[0].relative_to(root)}) hold "
                "one or two values: masks, not photos; read the folder with --from masks")
    return None


def _at_most_two_values(f: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(f) as img:
            if img.width * img.height > 4096 * 4096:
                return False
            colours = img.getcolors(3)
    except Exception:  # noqa: BLE001 -- an unreadable image is the reader's warning, not a mask
        return False
    return colours is not None and len(colours) <= 2


def sniff(path: Path) -> float:
    path = Path(path)
    if not path.is_dir() or holds_annotation_files(path):
        return declined("holds annotation files") if path.is_dir() else declined("class folders are a folder")
    hint = mask_set_hint(path, _images_sample(path))
    if hint is not None:
        return declined(hint)
    subdirs = [d for d in path.iterdir() if d.is_dir()]
    for d in subdirs:
        for f in d.iterdir():
            if is_image_file(f):
                return 0.5
            if f.is_dir() and d.name.lower() in SPLIT_FOLDERS:
                if any(is_image_file(g) for g in f.iterdir()):
                    return 0.5
    if any(is_image_file(f) for f in path.iterdir()):
        return 0.1  # images only, nothing annotated yet
    return declined("no <class>/<image> folders and no images")


def _images_sample(root: Path, n: int = 2000) -> list[Path]:
    """Up to ``n`` image files below ``root`` (for the sniff's mask-set check)."""
    out = []
    for p in root.rglob("*"):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            out.append(p)
            if len(out) >= n:
                break
    return out


def read(path: str | Path, *, labels=None) -> Dataset:
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
    hint = mask_set_hint(root, files)
    if hint is not None:
        raise DataError(root, hint)
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
        for frame_id, frame_file in image_frames(img, rid):  # a multi-frame DICOM: one image per frame
            records.append(DraftRecord(ImageRecord(id=frame_id, width=w, height=h, file=frame_file,
                                                   source=Source(str(img))), classes=labels_of))
            if split:
                splits.setdefault(split, []).append(frame_id)
    builder = DatasetBuilder(root, "folders", labels=labels, splits=splits or None, records=records, warnings=warnings)
    return builder.build()
