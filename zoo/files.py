"""Reading the user's files safely: bytes, text, JSON and YAML, each problem a DataError naming
the file (never a traceback, never a guess that could garble a label name).

In the contract because the contract itself reads through it (``ImageRecord.open`` decodes a
labelme ``imageData`` with :func:`read_json`), and every reader, the linter and third-party
readers share it."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from zoo.errors import DataError, ZooError

#: Image formats other tools read too: written out under their own name.
COMMON_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jpe", ".jfif")
#: Every file name zoo takes for an image (DICOM too, decoded by :mod:`zoo.dicom`); a file
#: without a suffix is an image when it is DICOM (:func:`is_image_file`).
IMAGE_SUFFIXES = (*COMMON_IMAGE_SUFFIXES, ".dcm", ".dicom")


def is_file(p: str | Path) -> bool:
    """A regular file at ``p``; False (not an exception) for names the filesystem refuses
    (too long, a NUL byte), which come from the user's annotation files."""
    return os.path.isfile(p)


def is_image_file(p: str | Path) -> bool:
    """An image by its name, or a file without a suffix that starts as DICOM does (scanners
    and PACS exports often write ``IM000123`` with no extension)."""
    suffix = os.path.splitext(p)[1].lower()
    if suffix in IMAGE_SUFFIXES:
        return True
    # no suffix, or a UID's last number ("1.2.840.10008.5"): look at the bytes
    return (not suffix or suffix[1:].isdigit()) and is_dicom_head(read_head(Path(p), 132))


def is_dicom_head(head: bytes) -> bool:
    """A DICOM Part 10 file: 128 bytes of preamble, then ``DICM``."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def decode_text(raw: bytes, file: Path) -> str:
    """Text of a file: UTF-8 (a BOM is dropped) or UTF-16 with a BOM; anything else is a
    clear error rather than a guess that could garble label names."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(file, f"is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                              "re-save it as UTF-8") from None


def read_head(file: Path, n: int) -> bytes:
    """The first ``n`` bytes of a regular file, for sniffing; ``b""`` for anything else (a
    FIFO named ``a.json`` would block, a link to /dev/zero never ends)."""
    if not is_file(file):
        return b""
    try:
        with open(file, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def read_bytes(file: Path) -> bytes:
    """The bytes of an annotation file; a DataError for one that is not a regular file (a
    FIFO or a device: reading it would block or never end)."""
    if not is_file(file):
        raise DataError(file, "is not a regular file")
    return Path(file).read_bytes()


def read_json(file: Path):
    """Parsed JSON of a file; a DataError naming the file when it is not valid JSON."""
    import orjson

    raw = read_bytes(file)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if raw.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
            try:
                return orjson.loads(decode_text(raw, file))
            except orjson.JSONDecodeError as e2:
                e = e2
        else:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                decode_text(raw, file)  # raises the encoding error
            # Python's json (labelme's writer) emits NaN / Infinity, which orjson refuses:
            # read those files with the standard library, so the bad shape alone is dropped
            import json

            try:
                return json.loads(text)
            except ValueError:
                pass
            except RecursionError:
                raise DataError(file, "is not valid JSON (nested too deeply)") from None
        raise DataError(file, f"is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None


def read_lines(file: Path) -> list[str]:
    """Non-blank, stripped lines of a text file."""
    file = Path(file)
    if not file.is_file():
        raise DataError(file, "no such file")
    return [ln.strip() for ln in decode_text(read_bytes(file), file).splitlines() if ln.strip()]


def read_yaml_mapping(f: Path, what: str) -> dict:
    """A YAML file that must hold a mapping; a DataError naming the file otherwise."""
    import yaml

    try:
        data = yaml.safe_load(decode_text(read_bytes(f), f)) or {}
    except yaml.YAMLError as e:
        raise DataError(f, f"is not valid YAML ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise DataError(f, "is not valid YAML (nested too deeply)") from None
    if not isinstance(data, dict):
        raise DataError(f, f"must be a mapping of {what}")
    return data


def max_image_pixels() -> int:
    """The largest image zoo opens: the size past which PIL itself refuses one as a
    decompression bomb (2 x ``Image.MAX_IMAGE_PIXELS``, 179 M pixels; a 108 MP photo opens)."""
    from PIL import Image

    return 2 * int(Image.MAX_IMAGE_PIXELS or 2**30)


@contextmanager
def open_image(file: Path):
    """``file`` opened with PIL, its header checked against :func:`max_image_pixels` before a
    pixel is decoded, PIL's bomb warning kept off the screen; any failure while it is open
    (a truncated file on ``load()``) a DataError naming the file."""
    import warnings

    from PIL import Image

    limit = max_image_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, in one line
            with Image.open(file) as img:
                w, h = img.size
                if w * h > limit:
                    raise DataError(file, f"is {w}x{h} pixels, more than zoo opens ({limit:,}; a decompression "
                                          "bomb?); not decoded")
                yield img
    except ZooError:
        raise
    except Image.DecompressionBombError:
        raise DataError(file, f"declares more than {limit:,} pixels (a decompression bomb?); not decoded") from None
    except Exception as e:  # noqa: BLE001 -- PIL raises many types on hostile bytes; all mean "not an image"
        raise DataError(file, f"cannot read this image ({type(e).__name__}: {e})") from None
