"""Shared pieces of the writers: images and text files placed safely under ``out``."""

from __future__ import annotations

import shutil
from pathlib import Path

from pathlib import PurePosixPath

from zoo.data.safe_paths import MAX_NAME_BYTES, safe_name, safe_relpath, shorten_name
from zoo.dataset import ImageRecord
from zoo.errors import DataError, ZooError


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
    """Put ``rec``'s pixels at ``folder/<id><suffix>``: the file's bytes when it needs no EXIF
    rotation, else the rotated pixels (so that annotation coordinates, which are after EXIF,
    match); an embedded labelme ``imageData`` is decoded to PNG. Never links (a link would
    let a later write reach the user's file)."""
    target = _new_file(image_target(rec, folder, stem))
    if rec.file is not None and not _exif_rotated(rec.file):
        shutil.copyfile(rec.file, target)
    else:
        try:
            img = rec.open()
        except Exception as e:  # noqa: BLE001 -- PIL raises many types on a damaged image
            raise DataError(rec.file or rec.embedded or rec.id,
                            f"image does not decode ({type(e).__name__}: {e}); nothing more was written") from None
        if target.suffix in (".jpg", ".jpeg"):
            img.save(target, quality=95)
        else:
            img.save(target)
    return target


def write_text(folder: Path, rel_id: str, suffix: str, text: str) -> Path:
    return write_bytes(folder, rel_id, suffix, text.encode("utf-8"))


def write_bytes(folder: Path, rel_id: str, suffix: str, data: bytes) -> Path:
    from zoo import atomic

    return atomic.write_bytes(_new_file(safe_relpath(rel_id + suffix, folder)), data)  # whole, or not at all
