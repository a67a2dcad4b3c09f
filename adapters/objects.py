"""Per-object masks in (``--from objects``, sniffed): one binary PNG per object.

Layouts:

* Data Science Bowl 2018: ``<id>/images/<id>.png`` and ``<id>/masks/*.png``, one object per
  mask file (names free);
* flat: ``images/<stem>.png`` and ``masks/<stem>_<k>.png`` (``k`` any number), also below
  split folders (``train/images`` + ``train/masks``).

Each mask file is one object (instance-seg, detect, and semantic-seg by painting them). Its
values follow the binary rule of :mod:`zoo.adapters.mask_pixels` (any two values; soft
edges and JPEG thresholded at half the range, with a warning). One class, named by
``labels.txt`` / ``class_names.txt`` / zoo.yaml ``categories`` when they hold one name,
else ``object``; masks in sub-folders of ``masks/`` (``masks/<class>/*.png``) take the
sub-folder's name as their class. An empty mask file is a warning (no object); a mask of
another size than its image is an error naming both sizes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from zoo.adapters.common import image_size
from zoo.adapters.mask_classes import MaskClasses, find_classes
from zoo.adapters.mask_pairs import sibling_folders
from zoo.adapters.mask_pixels import binary_foreground, column_major, mask_instance, mask_values
from zoo.data.builder import DatasetBuilder, DraftRecord
from zoo.data.dataset_config import load_dataset_config
from zoo.data.reading import declined
from zoo.dataset import Dataset, ImageRecord, Source
from zoo.errors import DataError
from zoo.files import IMAGE_SUFFIXES
from zoo.progress import track

DEFAULT_CLASS = "object"
_NUMBERED = re.compile(r"^(.*)_(\d+)$")


@dataclass(frozen=True)
class ObjectImage:
    """An image and its object masks (``(class or None, file)``)."""

    id: str
    image: Path
    masks: tuple[tuple[str | None, Path], ...]


def _image_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError:
        return []


def _mask_files(folder: Path) -> list[tuple[str | None, Path]]:
    """Mask files of a masks/ folder, with the class their sub-folder names."""
    out = []
    for dirpath, dirs, files in os.walk(folder):
        dirs.sort()
        sub = Path(dirpath).relative_to(folder)
        cls = sub.parts[0] if sub.parts else None
        out += [(cls, Path(dirpath, f)) for f in sorted(files) if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES]
    return out


def dsb_images(root: Path) -> list[ObjectImage]:
    """``<id>/images/<id>.png`` + ``<id>/masks/*.png`` below ``root`` (split folders allowed;
    the image named as its folder, else it is an images/ + masks/ pair of one image)."""
    out = []
    for dirpath, dirs, _files in os.walk(root):
        here = Path(dirpath)
        if "images" in dirs and "masks" in dirs:
            imgs = _image_files(here / "images")
            if len(imgs) == 1 and imgs[0].stem == here.name:  # <id>/images/<id>.png
                rid = here.relative_to(root).as_posix()
                out.append(ObjectImage(rid if rid != "." else imgs[0].stem, imgs[0], tuple(_mask_files(here / "masks"))))
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return out


def flat_images(root: Path) -> list[ObjectImage]:
    """``images/<stem>.png`` + ``masks/<stem>_<k>.png`` (at the top or below split folders)."""
    out = []
    for img_dir, mask_dir in sibling_folders(root):
        base = mask_dir.parent.relative_to(root).as_posix() if mask_dir.parent != root else ""
        images = {p.stem.lower(): p for p in _image_files(img_dir)}
        found: dict[str, list] = {}
        for cls, m in _mask_files(mask_dir):
            match = _NUMBERED.match(m.stem)
            key = match.group(1).lower() if match else None
            if key in images:
                found.setdefault(key, []).append((cls, m))
        for key, masks in sorted(found.items()):
            rid = images[key].stem
            out.append(ObjectImage(f"{base}/{rid}" if base else rid, images[key], tuple(masks)))
    return out


def sniff(path: Path) -> float:
    path = Path(path)
    if not path.is_dir():
        return declined("per-object masks are a folder")
    dsb = dsb_images(path)
    if dsb and sum(len(o.masks) for o in dsb[:20]) > 0:
        return 0.9
    flat = flat_images(path)
    if flat:
        return 0.88
    return declined("no <id>/images/ + <id>/masks/ folders and no masks/<stem>_<k> files")


def read(path: str | Path, *, labels=None) -> Dataset:
    root = Path(path)
    if not root.is_dir():
        raise DataError(root, "per-object masks are a folder (<id>/images/ + <id>/masks/, or images/ + masks/<stem>_<k>)")
    found = dsb_images(root) or flat_images(root)
    if not found:
        raise DataError(root, "holds no image with per-object masks (<id>/images/<id>.png + <id>/masks/*.png, "
                              "or images/x.png + masks/x_1.png)")
    table = find_classes(root, [], load_dataset_config(root), labels, voc_layout=False)
    if not table.binary:
        raise DataError(table.source, "names several classes; per-object masks take their class from the "
                                      "sub-folder of masks/ they are in (masks/<class>/*.png)")
    single = table.foreground if table.names else DEFAULT_CLASS
    plain = MaskClasses(source=table.source)
    builder = DatasetBuilder(root, "objects", labels=labels)
    said: set[str] = set()
    for obj in track(found, "reading object masks", total=len(found)) if len(found) > 200 else found:
        w, h = image_size(obj.image)
        instances = []
        for cls, m in obj.masks:
            values, present = mask_values(m, plain, obj.image, (w, h))
            fg = binary_foreground(column_major(values), present, plain, m, said)
            if fg is None:
                builder.warn(m, "mask is empty; no object")
                continue
            instances.append(mask_instance(cls or single, fg, Source(str(m))))
        rec = ImageRecord(id=obj.id, width=w, height=h, file=obj.image, source=Source(str(obj.image.parent.parent)))
        builder.add(DraftRecord(rec, instances))
    for kind, what in (("lossy", "JPEG (lossy)"), ("soft", "with soft (anti-aliased) edges")):
        if kind in said:
            builder.warn(root, f"masks are {what}: values >= half their range read as the object")
    return builder.build()
