"""Shared pieces of the writers: images and text files placed safely under ``out``."""

from __future__ import annotations

import shutil
from pathlib import Path

from zoo.adapters.common import safe_relpath
from zoo.dataset import ImageRecord


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
    target = image_target(rec, folder, stem)
    target.parent.mkdir(parents=True, exist_ok=True)
    if rec.file is not None and not _exif_rotated(rec.file):
        shutil.copyfile(rec.file, target)
    else:
        img = rec.open()
        if target.suffix in (".jpg", ".jpeg"):
            img.save(target, quality=95)
        else:
            img.save(target)
    return target


def write_text(folder: Path, rel_id: str, suffix: str, text: str) -> Path:
    target = safe_relpath(rel_id + suffix, folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def write_bytes(folder: Path, rel_id: str, suffix: str, data: bytes) -> Path:
    target = safe_relpath(rel_id + suffix, folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target
