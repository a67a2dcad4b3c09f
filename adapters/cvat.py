"""CVAT for images 1.1 XML in (``--from cvat``, sniffed): a task export (``annotations.xml``
or ``<subset>.xml`` beside ``images/``) or a project export (``<image subset="...">``, the
files under ``images/<subset>/``).

Every shape kind, translated to labelme's and read by labelme's rules
(:func:`zoo.adapters.labelme.shape_instances`):

* ``box`` -> a rectangle (``rotation`` != 0: the polygon of its turned corners);
* ``polygon`` -> a polygon; ``polyline`` -> a linestrip (labelme's 10-pixel stroke);
* ``points`` -> keypoints named by their label, given to the object of their ``group_id``
  or the smallest one around them (labelme's rule);
* ``ellipse`` -> a polygon within a pixel of the ellipse (labelme's circle rule);
* ``mask`` -> CVAT's RLE (runs of 0 and 1, row by row, starting with 0, over the box
  ``left, top, width, height``) placed on the image;
* ``group_id`` joins shapes of one label into one object; ``z_order``: shapes are painted in
  that order (a semantic label map shows the top one); ``<tag>`` -> an image label
  (classify). ``occluded``, ``source`` and attributes are not used by any task and are left
  out; ``skeleton``, ``cuboid`` and ``<track>`` (video) are skipped with a warning.

A shape without a label is skipped with a warning. Image ids are the ``name`` without its
extension (``subset/name`` in a project export); ``subset`` gives the split.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from zoo.adapters.common import ImageIndex, checked_image_size
from zoo.adapters.labelme import shape_instances
from zoo.data.builder import DatasetBuilder, DraftRecord, SPLIT_FOLDERS, warn
from zoo.data.reading import declined
from zoo.dataset import Dataset, ImageRecord, Problem, Source
from zoo.errors import DataError
from zoo.files import IMAGE_SUFFIXES, is_file, read_bytes, read_head

_CVAT_ROOT = re.compile(rb"<annotations[\s>]")
SKIPPED_KINDS = ("skeleton", "cuboid", "track")


def _is_cvat(f: Path) -> bool:
    head = read_head(f, 4096)
    return bool(_CVAT_ROOT.search(head)) and b"<version>" in head


def _xml_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*.xml") if is_file(p) and _is_cvat(p))


def sniff(path: Path) -> float:
    path = Path(path)
    if path.is_file():
        return 1.0 if path.suffix.lower() == ".xml" and _is_cvat(path) else declined("not a CVAT XML file")
    if _xml_files(path):
        return 0.96  # beats VOC's and YOLO's files beside it: CVAT's root element is its own
    return declined("no XML file with an <annotations> root and a <version> at the top")


def read(path: str | Path, *, labels=None, images: Path | None = None) -> Dataset:
    path = Path(path)
    root = path.parent if path.is_file() else path
    files = [path] if path.is_file() else _xml_files(path)
    if not files:
        raise DataError(path, "holds no CVAT for images XML (annotations.xml)")
    builder = DatasetBuilder(root, "cvat", labels=labels)
    splits: dict[str, list[str]] = {}
    index = ImageIndex(root, images)
    for f in files:
        tree = _parse(f)
        file_subset = None if f.stem.lower() == "annotations" else f.stem
        images = tree.findall("image")
        subsets = {el.get("subset") for el in images}
        for el in tree.findall("track"):
            builder.warn(f, f"<track> (CVAT for video, id {el.get('id')}) is not read; export as CVAT for images")
        for el in images:
            rec = _image(el, f, root, file_subset, len(subsets) > 1 or len(files) > 1, builder.warnings, index)
            if rec is None:
                continue
            builder.add(rec)
            split = SPLIT_FOLDERS.get(str(el.get("subset") or file_subset or "").lower())
            if split:
                splits.setdefault(split, []).append(rec.image.id)
    builder.splits = splits or None
    return builder.build()


def _parse(f: Path) -> ET.Element:
    try:
        return ET.fromstring(read_bytes(f))
    except ET.ParseError as e:
        raise DataError(f, f"is not well-formed XML ({e})") from None


def _image(el, f: Path, root: Path, file_subset: str | None, by_subset: bool, warnings: list[Problem],
           index) -> DraftRecord | None:
    name = el.get("name") or ""
    subset = el.get("subset") or file_subset
    stem = name.rsplit(".", 1)[0] if "." in Path(name).name else name
    rid = f"{subset}/{stem}" if by_subset and subset else stem
    image = _find(root, name, subset, index)
    if image is None:
        return warn(warnings, f, f"image '{name}' not found (looked in {root}, images/, images/{subset or ''}/ "
                                 "and by its file name below the folder); image skipped")
    try:
        w, h = checked_image_size(image, (_int(el.get("width")), _int(el.get("height"))), f, warnings)
    except DataError as e:
        return warn(warnings, f, f"image {image}: {e.reason}; image skipped")
    source = f"{f}#{subset}/{name}" if by_subset and subset else f"{f}#{name}"
    shapes = _shapes(el, source, w, h, warnings)
    record = ImageRecord(id=rid, width=w, height=h, file=image, source=Source(source))
    tags = [t.get("label") for t in el.findall("tag") if t.get("label")]
    return DraftRecord(record, shape_instances(Path(source), w, h, shapes, warnings), tags)


def _find(root: Path, name: str, subset: str | None, index) -> Path | None:
    """The image a CVAT ``name`` means: as written below the folder, in ``images/`` (or
    ``images/<subset>/``), else the one file of that name (or stem, when ``name`` has no
    extension) anywhere below it."""
    if not name:
        return None
    bases = [root, root / "images", *((root / "images" / subset,) if subset else ())]
    if index.images is not None:  # --images DIR first
        bases[:0] = [index.images, *((index.images / subset,) if subset else ())]
    for base in bases:
        c = base / name
        if is_file(c) and c.suffix:
            return c
        if not Path(name).suffix:
            for hit in sorted(base.glob(Path(name).name + ".*")) if base.is_dir() else ():
                if hit.suffix.lower() in IMAGE_SUFFIXES and is_file(hit):
                    return hit
    return index.find_one(name, f"image '{name}'") if Path(name).suffix else index.find_stem(Path(name).name)


def _int(v) -> int | None:
    try:
        n = int(float(v))
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


def _shapes(el, source: str, w: int, h: int, warnings: list[Problem]) -> list[dict]:
    """The image's shapes as labelme shape dicts, in z_order (document order within one):
    objects are made, and painted, in that order (a warning's shape number is a position in it)."""
    out = []
    for k, s in enumerate(el):
        if s.tag == "tag":
            continue
        if s.tag in SKIPPED_KINDS:
            warn(warnings, source, f"<{s.tag}> is not read", k)
            continue
        z = _float(s.get("z_order")) or 0.0
        out += [(z, k, shape) for shape in _shape(s, source, k, warnings)]
    return [shape for _z, _k, shape in sorted(out, key=lambda t: (t[0], t[1]))]


def _shape(s, source: str, k: int, warnings: list[Problem]) -> list[dict]:
    """One CVAT shape as labelme shapes (a ``points`` shape is one point shape per point)."""
    gid = s.get("group_id")
    base = {"label": s.get("label") or "", "flags": {},
            "group_id": int(gid) if gid and gid.isdigit() and int(gid) > 0 else None}
    numbers = {a: _float(s.get(a)) for a in ("xtl", "ytl", "xbr", "ybr", "cx", "cy", "rx", "ry")}
    needs = {"box": ("xtl", "ytl", "xbr", "ybr"), "ellipse": ("cx", "cy", "rx", "ry")}.get(s.tag, ())
    if any(numbers[a] is None for a in needs):
        warn(warnings, source, f"<{s.tag}> has a missing or non-numeric {'/'.join(needs)}; skipped", k)
        return []
    rot = _float(s.get("rotation")) or 0.0
    if s.tag == "box":
        x0, y0, x1, y1 = (numbers[a] for a in needs)
        if rot:
            return [{**base, "shape_type": "polygon", "points": _turned([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], rot)}]
        return [{**base, "shape_type": "rectangle", "points": [[x0, y0], [x1, y1]]}]
    if s.tag in ("polygon", "polyline"):
        return [{**base, "shape_type": "polygon" if s.tag == "polygon" else "linestrip", "points": _points(s.get("points"))}]
    if s.tag == "points":
        return [{**base, "shape_type": "point", "points": [p]} for p in _points(s.get("points"))]
    if s.tag == "ellipse":
        return [{**base, "shape_type": "polygon", "points": ellipse_points(*(numbers[a] for a in needs), rot)}]
    if s.tag == "mask":
        shape = _mask(s, base, source, k, warnings)
        return [shape] if shape is not None else []
    warn(warnings, source, f"unknown shape <{s.tag}>; skipped", k)
    return []


def _mask(s, base: dict, source: str, k: int, warnings: list[Problem]) -> dict | None:
    left, top, width, height = (_int_or_zero(s.get(a)) for a in ("left", "top", "width", "height"))
    m = cvat_rle_mask(s.get("rle") or "", width, height)
    if m is None:
        return warn(warnings, source, f"mask rle does not cover its {width}x{height} box; skipped", k)
    return {**base, "shape_type": "mask", "points": [[left, top], [left + width, top + height]], "mask_array": m}


def cvat_rle_mask(rle: str, width: int, height: int) -> np.ndarray | None:
    """CVAT's mask RLE (comma-separated run lengths of 0, 1, 0, ... row by row) as a
    ``(height, width)`` bool array; None when the runs do not cover the box exactly."""
    try:
        runs = np.array([int(v) for v in rle.split(",") if v.strip()], dtype=np.int64)
    except ValueError:
        return None
    if width <= 0 or height <= 0 or (runs < 0).any() or runs.sum() != width * height:
        return None
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(height, width)


def ellipse_points(cx, cy, rx, ry, rotation_deg: float) -> list[list[float]]:
    """An ellipse as a polygon within a pixel of it (labelme's circle rule on its larger
    radius), turned by ``rotation_deg`` about its centre."""
    r = max(rx or 0.0, ry or 0.0)
    n = 12 if r <= 1 else max(12, min(2048, math.ceil(math.pi / math.acos(1 - 1 / r))))
    pts = [(cx + rx * math.cos(2 * math.pi * i / n), cy + ry * math.sin(2 * math.pi * i / n)) for i in range(n)]
    return _turned(pts, rotation_deg, (cx, cy))


def _turned(pts, deg: float, centre=None) -> list[list[float]]:
    if centre is None:
        centre = (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    cx, cy = centre
    return [[cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c] for x, y in pts]


def _points(text) -> list[list[float]]:
    out = []
    for pair in (text or "").split(";"):
        xy = pair.split(",")
        if len(xy) == 2:
            out.append([_float(xy[0]), _float(xy[1])])
    return out


def _float(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _int_or_zero(v) -> int:
    return _int(v) or 0
