"""Shared pieces of the writers: images and text files placed safely under ``out``."""

from __future__ import annotations

import shutil
from pathlib import Path

from pathlib import PurePosixPath

from zoo import atomic
from zoo.data.safe_paths import MAX_NAME_BYTES, safe_name, safe_relpath, shorten_name
from zoo.dataset import ImageRecord
from zoo.errors import DataError, ZooError
from zoo.pixels import fits_uint16


class OutputNames:
    """The output name (a safe relative path, no suffix) of each record id within one
    write, never two the same: ids that become one safe name (``..a`` and ``_a``) or differ
    only in case (a case-insensitive disk) get ``_2``, ``_3``, ...; a long name is cut to
    fit the filesystem, keeping room for that number and the file's suffix."""

    def __init__(self) -> None:
        self._of: dict[str, str] = {}
        self._taken: set[str] = set()

    def __call__(self, rid: str) -> str:
        name = self._of.get(rid)
        if name is not None:
            return name
        parts = [safe_name(p) for p in PurePosixPath(rid.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
        parts = parts or ["_"]
        parts[-1] = shorten_name(parts[-1], MAX_NAME_BYTES - 30)
        base = name = "/".join(parts)
        k = 2
        while name.lower() in self._taken:
            name = f"{base}_{k}"
            k += 1
        self._taken.add(name.lower())
        self._of[rid] = name
        return name


def _new_file(target: Path) -> Path:
    """``target``, its folder made; an error rather than overwriting a file this write made."""
    if target.exists():
        raise ZooError(f"{target} was already written by this conversion; two images map to one name")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _exif_rotated(file: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(file) as img:
            return img.getexif().get(0x0112, 1) not in (1, None)
    except Exception:  # unreadable EXIF: copy the bytes as they are
        return False


def image_target(rec: ImageRecord, folder: Path, stem: str | None = None) -> Path:
    """Where ``rec``'s image goes below ``folder`` (its id as a safe relative path)."""
    return safe_relpath((stem or rec.id) + rec.suffix, folder)


def copy_image(rec: ImageRecord, folder: Path, stem: str | None = None) -> Path:
    """Put ``rec``'s pixels at ``folder/<id><suffix>``: the file's bytes when they are what
    a reader of the copy should see (no EXIF rotation to apply, no intensity rule, a format
    others read), else pixels zoo writes itself: the record's rule's 8-bit output when it
    has one (a framework that reads files, such as ultralytics, then sees what every other
    backend sees), else the canonical pixels, 16-bit PNG where they fit in it. Never links
    (a link would let a later write reach the user's file)."""
    target = _new_file(image_target(rec, folder, stem))
    if rec.file is not None and rec.intensity is None and rec.file.suffix.lower() == target.suffix \
            and not _exif_rotated(rec.file):
        shutil.copyfile(rec.file, target)
        return target
    write_pixels(rec, target)
    return target


def write_pixels(rec: ImageRecord, target: Path) -> None:
    """Write ``rec``'s pixels (see :func:`copy_image`) to ``target``, in its suffix's format."""
    import numpy as np
    from PIL import Image

    decoded = rec.pixels()  # a DataError naming the file when it does not decode
    if rec.intensity is not None or not decoded.deep:
        img = Image.fromarray(rec.rgb_of(decoded))
    elif target.suffix == ".png" and fits_uint16(decoded.array):
        a = decoded.array.astype(np.uint16)
        img = Image.fromarray(a) if a.ndim == 2 else None
        if img is None:  # 16-bit colour: PIL cannot write it, OpenCV can
            import cv2

            cv2.imwrite(str(target), np.ascontiguousarray(a[..., ::-1]))
            return
    else:
        raise DataError(rec.file or rec.embedded or rec.id,
                        f"{decoded.how} does not fit a {target.suffix} file without losing values; "
                        "give the record an intensity rule to write it as 8-bit")
    if target.suffix in (".jpg", ".jpeg"):
        img.save(target, quality=95)
    else:
        img.save(target)


def write_text(folder: Path, rel_id: str, suffix: str, text: str) -> Path:
    return write_bytes(folder, rel_id, suffix, text.encode("utf-8"))


def write_bytes(folder: Path, rel_id: str, suffix: str, data: bytes) -> Path:
    return atomic.write_bytes(_new_file(safe_relpath(rel_id + suffix, folder)), data)  # whole, or not at all
