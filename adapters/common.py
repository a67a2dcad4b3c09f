"""Helpers every reader and writer shares: text files, label lists, zoo.yaml, vocabularies,
safe output paths."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from zoo.dataset import Dataset, Problem, Source
from zoo.errors import DataError

IGNORE_LABEL = "__ignore__"
BACKGROUND_LABEL = "_background_"

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jpe", ".jfif")

COCO_KEYPOINTS = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
]
# COCO person skeleton (0-based) and OKS sigmas, used when the points are the COCO body points
COCO_SKELETON = [
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
]
COCO_SIGMAS = [
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
    0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
]


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


@dataclass
class LabelList:
    """A ``--labels`` file in labelme's labels.txt convention: one name per line;
    ``__ignore__`` (regions to ignore) and ``_background_`` (class 0 of label maps) are
    understood and are not categories."""

    names: list[str]
    file: Path | None = None
    has_ignore: bool = False
    has_background: bool = False

    @classmethod
    def read(cls, file: Path | str) -> LabelList:
        file = Path(file)
        names, seen = [], set()
        out = cls(names=names, file=file)
        for name in read_lines(file):
            if name == IGNORE_LABEL:
                out.has_ignore = True
            elif name == BACKGROUND_LABEL:
                out.has_background = True
            elif name in seen:
                raise DataError(file, f"label '{name}' is listed twice")
            else:
                seen.add(name)
                names.append(name)
        return out


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


def load_dataset_config(root: Path) -> dict:
    """The optional ``zoo.yaml`` at a dataset's root::

        categories: [rbc, wbc, platelet]     # instance classes, in this order
        classes: [normal, abnormal]          # image-level classes (classify), in this order
        keypoint_names: [head, tail]         # keypoint order (alias: keypoints)
        skeleton: [[head, tail]]             # pairs of names or 0-based indices
        oks_sigmas: [0.05, 0.05]             # one per keypoint (alias: sigmas)
        flip_idx: [0, 1]                     # keypoint index after a horizontal flip
        pixel_spacing: [0.5, 0.5]            # mm per pixel, row then column (or one number)

    Unknown keys are errors (a typo must not silently change the class order)."""
    if root.is_file():
        root = root.parent
    f = root / "zoo.yaml"
    if not f.is_file():
        return {}
    data = read_yaml_mapping(f, "keys (categories, classes, keypoint_names, ...)")
    aliases = {"keypoints": "keypoint_names", "sigmas": "oks_sigmas"}
    known = {"categories", "classes", "keypoint_names", "skeleton", "oks_sigmas", "flip_idx", "pixel_spacing"}
    out = {}
    for k, v in data.items():
        k = aliases.get(k, k)
        if k not in known:
            from zoo.errors import did_you_mean

            raise DataError(f, f"unknown key '{k}'{did_you_mean(k, known)}; known: {', '.join(sorted(known))}")
        out[k] = v
    for k in ("categories", "classes", "keypoint_names"):
        if k in out and not (isinstance(out[k], list) and all(isinstance(x, str) for x in out[k])):
            raise DataError(f, f"'{k}' must be a list of names")
    names = out.get("keypoint_names") or []
    if "skeleton" in out:
        sk = []
        for pair in out["skeleton"] or []:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise DataError(f, f"skeleton entry {pair!r} is not a pair")
            ij = []
            for p in pair:
                if isinstance(p, str):
                    if p not in names:
                        raise DataError(f, f"skeleton names '{p}', which is not in keypoint_names")
                    ij.append(names.index(p))
                elif isinstance(p, int) and 0 <= p < len(names):
                    ij.append(p)
                else:
                    raise DataError(f, f"skeleton entry {pair!r} is out of range")
            sk.append((ij[0], ij[1]))
        out["skeleton"] = sk
    for k in ("oks_sigmas", "flip_idx"):
        if k in out and names and len(out[k]) != len(names):
            raise DataError(f, f"'{k}' has {len(out[k])} entries for {len(names)} keypoint_names")
    if "pixel_spacing" in out:
        out["pixel_spacing"] = _pixel_spacing(out["pixel_spacing"], f)
    out["_file"] = f
    return out


def _pixel_spacing(value, f: Path) -> tuple[float, float]:
    """zoo.yaml's ``pixel_spacing``: one positive number, or [row, column] (DICOM's order)."""
    values = value if isinstance(value, list) else [value]
    ok = len(values) in (1, 2) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf") for v in values
    )
    if not ok:
        raise DataError(f, f"'pixel_spacing' must be a positive number or [row, column] numbers, got {value!r}")
    return (float(values[0]), float(values[-1]))


def order_vocabulary(found: set[str], given: list[str] | None) -> list[str]:
    """The given order when there is one, else sorted names (never order of appearance)."""
    return list(given) if given is not None else sorted(found)


def keypoint_vocabulary(found: set[str], config: dict) -> list[str]:
    """zoo.yaml's keypoint names, else COCO's 17 in COCO order when the points are a subset
    of them, else sorted names."""
    if config.get("keypoint_names"):
        return list(config["keypoint_names"])
    if found and found <= set(COCO_KEYPOINTS):
        return list(COCO_KEYPOINTS)
    return sorted(found)


def apply_keypoint_meta(dataset: Dataset, config: dict) -> None:
    names = dataset.keypoint_names
    if not names:
        return
    if config.get("skeleton"):
        dataset.skeleton = list(config["skeleton"])
    elif names == COCO_KEYPOINTS:
        dataset.skeleton = list(COCO_SKELETON)
    if config.get("oks_sigmas"):
        dataset.oks_sigmas = [float(s) for s in config["oks_sigmas"]]
    elif names == COCO_KEYPOINTS:
        dataset.oks_sigmas = list(COCO_SIGMAS)


def flip_index(names: list[str], config: dict | None = None) -> list[int]:
    """Index of each keypoint after a horizontal flip: zoo.yaml's ``flip_idx``, else
    ``left``/``right`` swapped in the names (``left_eye`` <-> ``right_eye``, ``l_x`` <-> ``r_x``)."""
    if config and config.get("flip_idx"):
        return [int(i) for i in config["flip_idx"]]
    pos = {n: i for i, n in enumerate(names)}
    swaps = [("left", "right"), ("Left", "Right"), ("LEFT", "RIGHT")]
    out = []
    for n in names:
        j = pos[n]
        for a, b in swaps:
            for x, y in ((a, b), (b, a)):
                if x in n and n.replace(x, y) in pos:
                    j = pos[n.replace(x, y)]
                    break
            else:
                continue
            break
        else:
            m = re.match(r"^([lrLR])([_\-. ].*)$", n)
            if m:
                other = {"l": "r", "r": "l", "L": "R", "R": "L"}[m.group(1)] + m.group(2)
                j = pos.get(other, j)
        out.append(j)
    return out


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def number(v) -> float | None:
    """``v`` as a finite float when it is a JSON number (not a bool, string or NaN), else None."""
    return float(v) if finite(v) else None


def visibility(v: float) -> int:
    """A keypoint visibility as COCO's 0 / 1 / 2 (a file may hold 7 or 1e308)."""
    return min(max(int(v), 0), 2)


def is_file(p: str | Path) -> bool:
    """A regular file at ``p``; False (not an exception) for names the filesystem refuses
    (too long, a NUL byte), which come from the user's annotation files."""
    return os.path.isfile(p)


def has_control_char(name: str) -> bool:
    """A line break, tab or other control character: such a name would shift every line of
    the line-per-name files zoo writes (class_names.txt, classes.txt, labels.txt)."""
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in name)


_UNSAFE = re.compile(r"[^\w\-. ]+", re.UNICODE)


def safe_name(name: str) -> str:
    """A label name made safe as ONE path component (``tv/monitor`` -> ``tv_monitor``,
    ``../x`` -> ``__x``): never a separator, never ``.``/``..``, never empty."""
    s = _UNSAFE.sub("_", name.replace("/", "_").replace("\\", "_")).strip()
    s = re.sub(r"\.{2,}", "_", s)
    s = s.lstrip(".") or "_"
    return shorten_name(s)


MAX_NAME_BYTES = 200  # of one path component: filesystems allow 255 bytes, and _2 may be added


def shorten_name(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """``name`` cut to ``limit`` UTF-8 bytes, keeping its extension (``.jpg``) and whole
    characters."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 10:
        stem, ext = name, ""
    else:
        ext = "." + ext
    budget = limit - len(ext.encode("utf-8"))
    return stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore") + ext


def safe_relpath(rel: str, out: Path) -> Path:
    """``out / rel`` for a record id, proved to stay inside ``out`` (ids come from the
    user's folder structure and could hold ``..``)."""
    parts = [safe_name(p) for p in PurePosixPath(rel.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    target = out.joinpath(*parts) if parts else out / "_"
    base = out.resolve()
    if not target.resolve().is_relative_to(base):
        raise DataError(rel, f"would be written outside {out}")
    return target


def unique_safe_names(names: list[str]) -> list[str]:
    """safe_name of each, made unique (``a/b`` and ``a_b`` must not share a folder)."""
    out, used = [], set()
    for n in names:
        s = base = safe_name(n)
        k = 2
        while s.lower() in used:
            s = f"{base}_{k}"
            k += 1
        used.add(s.lower())
        out.append(s)
    return out


def basename_any(path: str) -> str:
    """The file name of a POSIX or Windows path (``C:\\data\\a.jpg`` -> ``a.jpg``)."""
    return PureWindowsPath(path).name if "\\" in path or re.match(r"^[A-Za-z]:", path) else PurePosixPath(path).name


def find_image(ann_file: Path, named: str | None, also_dirs: tuple[Path, ...] = ()) -> Path | None:
    """The image an annotation file names: the path as written (relative to the annotation's
    folder, ``../`` allowed, or absolute), else that file name beside the annotation (Windows
    or foreign absolute paths), else a file with the annotation's stem and an image suffix."""
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
    """Every image file below a root by lower-cased file name, built on first use: the last
    resort for an annotation whose image lies elsewhere in the folder (``images/`` beside
    ``annotations/``, a moved folder). Only an unambiguous name is answered."""

    def __init__(self, root: Path):
        self.root = root
        self._by_name: dict[str, list[Path]] | None = None

    def find(self, name: str | None) -> Path | None:
        if not name:
            return None
        if self._by_name is None:
            self._by_name = {}
            for dirpath, _dirs, files in os.walk(self.root):
                for fn in files:
                    if os.path.splitext(fn)[1].lower() in IMAGE_SUFFIXES:
                        self._by_name.setdefault(fn.lower(), []).append(Path(dirpath) / fn)
        hits = self._by_name.get(basename_any(name).lower(), [])
        return hits[0] if len(hits) == 1 else None

    def find_stem(self, stem: str) -> Path | None:
        hits = [p for s in IMAGE_SUFFIXES for p in (self.find(stem + s),) if p is not None]
        return hits[0] if len(hits) == 1 else None


def max_image_pixels() -> int:
    """The largest image zoo opens: the size past which PIL itself refuses to open one as a
    decompression bomb (2 x ``Image.MAX_IMAGE_PIXELS``, 179 M pixels; a 108 MP photo opens)."""
    from PIL import Image

    return 2 * int(Image.MAX_IMAGE_PIXELS or 2**30)


def image_size(file: Path | bytes, name: object = None) -> tuple[int, int]:
    """(width, height) after EXIF orientation, reading only the header of a file (or of
    bytes, such as a labelme ``imageData``; ``name`` is then the file to blame). A DataError
    when it is not an image, or when it is larger than :func:`max_image_pixels` (a
    decompression bomb: rasterising or decoding it would exhaust memory)."""
    import io
    import warnings as pywarnings

    from PIL import Image

    what = name if name is not None else file
    src = io.BytesIO(file) if isinstance(file, (bytes, bytearray)) else file
    try:
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(src) as img:
                w, h = img.size
                try:
                    orient = img.getexif().get(0x0112, 1)
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


def warn(dataset_warnings: list[Problem], file, reason: str, shape: int | None = None) -> None:
    dataset_warnings.append(Problem(Source(str(file), shape), reason))
