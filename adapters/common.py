"""Helpers the readers and writers share: image files (size, embedded ``imageData``, the
image an annotation names) and numbers as JSON gives them.

Reading text/JSON/YAML (:mod:`zoo.files`), label lists (:mod:`zoo.data.labels`), zoo.yaml
(:mod:`zoo.data.dataset_config`), building the Dataset (:mod:`zoo.data.builder`) and safe
output names (:mod:`zoo.data.safe_paths`) live in the core: it uses them too."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from zoo.data.builder import warn
from zoo.dataset import Problem
from zoo.dicom import dicom_size, frames, read_header
from zoo.errors import DataError
from zoo.files import IMAGE_SUFFIXES, is_dicom_head, is_file, max_image_pixels, read_head
from zoo.pixels import decode, split_frame


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def number(v) -> float | None:
    """``v`` as a finite float when it is a JSON number (not a bool, string or NaN), else None."""
    return float(v) if finite(v) else None


def visibility(v: float) -> int:
    """A keypoint visibility as COCO's 0 / 1 / 2 (a file may hold 7 or 1e308)."""
    return min(max(int(v), 0), 2)


def basename_any(path: str) -> str:
    """The file name of a POSIX or Windows path (``C:\\data\\a.jpg`` -> ``a.jpg``)."""
    return PureWindowsPath(path).name if "\\" in path or re.match(r"^[A-Za-z]:", path) else PurePosixPath(path).name


def find_image(ann_file: Path, named: str | None, also_dirs: tuple[Path, ...] = ()) -> Path | None:
    """The image an annotation file names: the path as written (relative to the annotation's
    folder, ``../`` allowed, or absolute), else that file name beside the annotation (Windows
    or foreign absolute paths), else a file with the annotation's stem and an image suffix."""
    base, frame = split_frame(named) if named and "#" in named else (None, None)
    if frame is not None:  # frame k of a multi-frame file: "cine.dcm#3"
        found = find_image(ann_file, str(base), also_dirs)
        return None if found is None else Path(f"{found}#{frame}")
    here = ann_file.parent
    if named and "/" not in named and "\\" not in named and ":" not in named:
        # the common case (a plain file name beside the annotation), without pathlib's cost
        c = os.path.join(str(here), named)
        if not named.lower().endswith(".json") and os.path.isfile(c):
            return here / named
    cands: list[Path] = []
    if named:
        norm = named.replace("\\", "/")
        is_win_abs = bool(re.match(r"^[A-Za-z]:/", norm)) or norm.startswith("//")
        if not is_win_abs:
            p = Path(norm)
            cands.append(p if p.is_absolute() else here / p)
        name = basename_any(named)
        if name:
            cands.append(here / name)
            cands.extend(d / name for d in also_dirs)
    for c in cands:
        if c.suffix.lower() != ".json" and is_file(c):
            return c
    for d in (here, *also_dirs):
        for suf in IMAGE_SUFFIXES:
            for s in (suf, suf.upper()):
                c = d / (ann_file.stem + s)
                if is_file(c):
                    return c
    return None


class ImageIndex:
    """Every image file below a root (and below ``--images DIR``, when given) by lower-cased
    file name, built on first use: the last resort for an annotation whose image lies
    elsewhere in the folder (``images/`` beside ``annotations/``, a moved folder, CVAT's own
    folder names, ``.JPG`` on disk for ``.jpg`` in the file). Only an unambiguous name is
    answered: several files of one name are an error naming them (:meth:`find_one`)."""

    def __init__(self, root: Path, images: Path | None = None):
        self.root = root
        self.images = images
        self._by_name: dict[str, list[Path]] | None = None

    def _index(self) -> dict[str, list[Path]]:
        if self._by_name is None:
            self._by_name = {}
            roots = [self.images] if self.images is not None else []
            if self.images is None or not _inside(self.root, self.images):
                roots.append(self.root)
            for top in dict.fromkeys(roots):
                for dirpath, _dirs, files in os.walk(top):
                    for fn in files:
                        if os.path.splitext(fn)[1].lower() in IMAGE_SUFFIXES:
                            self._by_name.setdefault(fn.lower(), []).append(Path(dirpath) / fn)
        return self._by_name

    def matches(self, name: str | None) -> list[Path]:
        """Every image file named ``name`` (its base name, any case)."""
        return sorted(self._index().get(basename_any(name).lower(), [])) if name else []

    def find(self, name: str | None) -> Path | None:
        hits = self.matches(name)
        return hits[0] if len(hits) == 1 else None

    def find_one(self, name: str | None, blame: object) -> Path | None:
        """The one image file named ``name``; None when there is none; a DataError naming
        ``blame`` and every match when there are several (zoo would be guessing)."""
        hits = self.matches(name)
        if len(hits) > 1:
            listed = ", ".join(str(h) for h in hits[:5]) + (", ..." if len(hits) > 5 else "")
            raise DataError(blame, f"image '{name}' is not where the file says, and {len(hits)} files of that name "
                                   f"are below the folder ({listed}); pass --images DIR, or rename them")
        return hits[0] if hits else None

    def find_stem(self, stem: str) -> Path | None:
        hits = [p for s in IMAGE_SUFFIXES for p in (self.find(stem + s),) if p is not None]
        return hits[0] if len(hits) == 1 else None


def _inside(root: Path, folder: Path) -> bool:
    try:
        return Path(folder).resolve().is_relative_to(Path(root).resolve())
    except OSError:
        return False


def image_size(file: Path | bytes, name: object = None) -> tuple[int, int]:
    """(width, height) after EXIF orientation, reading only the header of a file (or of
    bytes, such as a labelme ``imageData``; ``name`` is then the file to blame). A DataError
    when it is not an image, or when it is larger than :func:`max_image_pixels` (a
    decompression bomb: rasterising or decoding it would exhaust memory)."""
    import io
    import warnings as pywarnings

    from PIL import Image

    what = name if name is not None else file
    if not isinstance(file, (bytes, bytearray)):
        path, frame = split_frame(file)
        if frame is not None or is_dicom_head(read_head(path, 132)):
            return _frame_size(path, frame, what)
    src = io.BytesIO(file) if isinstance(file, (bytes, bytearray)) else file
    try:
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(src) as img:
                w, h = img.size
                try:
                    orient = _orientation(img)
                except Exception:  # a broken EXIF block must not hide the image
                    orient = 1
    except Image.DecompressionBombError:
        raise DataError(what, f"declares more than {max_image_pixels():,} pixels (a decompression bomb?); "
                              "not opened") from None
    except Exception as e:  # noqa: BLE001 -- PIL raises many types on hostile bytes; all mean "not an image"
        raise DataError(what, f"is not an image PIL can read ({type(e).__name__}: {e})") from None
    if w <= 0 or h <= 0 or w * h > max_image_pixels():
        raise DataError(what, f"is {w}x{h} pixels, more than zoo's limit of {max_image_pixels():,} "
                              "(a decompression bomb?); not opened")
    return (h, w) if orient in (5, 6, 7, 8) else (w, h)


def image_frames(file: Path, rid: str) -> list[tuple[str, Path]]:
    """(record id, file) of each image a file holds: ``(rid, file)`` for most; for a
    multi-frame DICOM one per frame, ``(rid#k, file#k)`` (decoded frame by frame)."""
    if not is_dicom_head(read_head(file, 132)):
        return [(rid, file)]
    n = frames(read_header(file))
    return [(rid, file)] if n == 1 else [(f"{rid}#{k}", Path(f"{file}#{k}")) for k in range(n)]


def _frame_size(path: Path, frame: int | None, what: object) -> tuple[int, int]:
    """(width, height) of a DICOM file or of a frame of a multi-frame file, from its header."""
    if is_dicom_head(read_head(path, 132)):
        return dicom_size(path, what, frame)
    h, w = decode(f"{path}#{frame}", what).array.shape[:2]  # a TIFF page: its own size
    return w, h


def _orientation(img) -> int:
    """The EXIF orientation of an open image, from its header. A PNG's EXIF is its eXIf
    chunk before the pixels (PIL has it in ``info``); PIL would decode the whole image to look
    for one after them, which made reading a PNG's size cost a full decode (17 ms at 512 x 512
    against 0.3 ms): a late eXIf is not looked for."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    return img.getexif().get(0x0112, 1)


def decode_image_data(data, file: Path) -> bytes:
    """The bytes of a labelme ``imageData`` (base64), checked to be an image within
    :func:`max_image_pixels` and to decode whole; a DataError naming the JSON file otherwise."""
    import base64
    import binascii
    import io
    import warnings as pywarnings

    from PIL import Image

    if not isinstance(data, str):
        raise DataError(file, f"imageData is a {type(data).__name__}, not base64 text")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise DataError(file, f"imageData is not base64 ({e})") from None
    image_size(raw, f"{file} (imageData)")
    try:  # the header alone would let a truncated image through to the writers
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as img:
                img.load()
    except Exception as e:  # noqa: BLE001 -- PIL raises many types on hostile bytes
        raise DataError(file, f"imageData does not decode ({type(e).__name__}: {e})") from None
    return raw


def checked_image_size(image: Path | bytes, declared: tuple, source: Path, warnings: list[Problem]) -> tuple[int, int]:
    """The size of ``image`` (a file, or the bytes of an ``imageData``), from its header: a
    file that is not an image never passes, whatever its name. ``declared`` is the
    annotation's (width, height), or (None, None). A declared size that is neither the
    image's size nor its size before EXIF rotation is a warning, and the image's own size
    is used, so memory follows the real image."""
    is_bytes = isinstance(image, (bytes, bytearray))
    w, h = image_size(image, f"{source} (imageData)" if is_bytes else None)
    dw, dh = declared
    if dw is None or dh is None:
        return w, h
    if (dw, dh) in ((w, h), (h, w)):
        return dw, dh
    what = "its imageData" if is_bytes else Path(image).name
    warn(warnings, source, f"declares the image {dw}x{dh} but {what} is {w}x{h}; the image's size is used")
    return w, h


