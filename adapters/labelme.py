"""labelme JSON in (every schema seen in the wild) and out.

Schemas read: pre-3.x (no ``shape_type``: a polygon; no image size: read from the image
header), 3.x (``line_color``/``fill_color``), 4.x (``group_id``), 5.x (``description``,
``mask``), X-AnyLabeling (extra keys such as ``score``, ``difficult``, ``attributes``:
ignored). One JSON file is one image; its id is the JSON's path relative to the folder,
without extension.

Shapes:

* ``polygon`` -> a polygon part; ``rectangle`` (2 corners in any order, or 4 points) -> a
  box; ``circle`` (centre, rim point) -> a polygon of ``max(12, pi / acos(1 - 1/r))``
  vertices (labelme's own labelme2coco rule: within a pixel of the circle; its box is the
  circle's). A mask painted from it differs from labelme2voc's PIL ellipse by a one-pixel
  ring: on labelme's primitives example 211 of 8,144 pixels (2.6%);
  ``line``/``linestrip`` -> a 10-pixel-wide stroke (one quad per segment: labelme's
  ``line_width``; PIL's wide line differs at the ends and joints: 102 of 514 and 232 of
  2,341 pixels on primitives); ``mask`` -> its base64 PNG placed at its first corner
  (truncated to whole pixels, as labelme does). Polygons and rectangles match labelme2voc
  pixel for pixel (tests/test_adapters_fidelity.py).
* ``group_id`` joins shapes with the same (label, group_id) into one instance (labelme's
  rule); ``point`` shapes with a group_id become keypoints of the instance of that
  group_id; points without one go to the smallest instance whose polygon or box contains
  them. The point's label is the keypoint name; visibility is 2.
* ``__ignore__`` -> an ignored region for every category (``category = -1``).
* image ``flags`` that are true -> image labels (``__ignore__`` excluded); the class
  vocabulary is every flag key seen (labelme writes all of flags.txt into each file).

Pixels: ``imagePath`` as written (relative, ``../``, absolute), else its file name beside
the JSON (Windows / other machines' absolute paths), else a sibling with the JSON's stem
and an image suffix, else the embedded ``imageData``. The size is ``imageWidth`` /
``imageHeight`` (labelme writes them after EXIF orientation); older files without them are
measured from the image header with EXIF orientation applied.

The bad-input policy is in ``adapters/POLICY.md``.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np

from zoo.adapters.common import ImageIndex, checked_image_size, decode_image_data, find_image, finite
from zoo.data import raster
from zoo.data.builder import DatasetBuilder, DraftInstance, DraftRecord, warn
from zoo.data.labels import IGNORE_LABEL
from zoo.data.reading import declined
from zoo.dataset import Dataset, ImageRecord, Problem, Source
from zoo.errors import DataError
from zoo.files import is_file, read_head, read_json
from zoo.progress import track

LINE_WIDTH = 10.0


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _is_labelme(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("shapes"), list)


def sniff(path: Path) -> float:
    """1.0 for a labelme JSON file; 0.9 for a folder holding one (first 20 JSON files looked at)."""
    path = Path(path)
    files = [path] if path.is_file() else _first_json(path, 20)
    for f in files:
        if f.suffix.lower() != ".json":
            continue
        head = read_head(f, 4096)
        # pre-3.x files (Python 2 dict order) may put a large imageData before "shapes"
        if b'"shapes"' in head or (len(head) == 4096 and b'"shapes"' in read_head(f, 64 << 20)):
            if path.is_file():
                return 1.0
            # annotations at the top of the folder beat formats found only deeper down
            return 0.97 if f.parent == path else 0.9
    return declined("no JSON file holding \"shapes\"")


def _first_json(root: Path, n: int) -> list[Path]:
    out = sorted(root.glob("*.json"))[:n]
    if out:
        return out
    for f in sorted(root.rglob("*.json")):
        out.append(f)
        if len(out) >= n:
            break
    return out


def list_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    # regular files only: a FIFO or a link to a device named *.json is not an annotation
    return sorted((p for p in root.rglob("*.json") if is_file(p)), key=lambda p: p.relative_to(root).as_posix())


def iter_records(path: Path, warnings: list[Problem], flag_names: set[str], images: Path | None = None):
    """Yield one DraftRecord (label names, see zoo.data.builder) per labelme file, in sorted
    path order; problems go to ``warnings``, flag names to ``flag_names``. Streaming writers
    use this directly."""
    path = Path(path)
    root = path.parent if path.is_file() else path
    files = list_files(path)
    n = 0
    index = ImageIndex(root, images)
    for f in track(files, "reading labelme", total=len(files)) if len(files) > 200 else files:
        data = read_json(f)
        if not _is_labelme(data):
            warn(warnings, f, "not a labelme file (no 'shapes' list); skipped")
            continue
        rec = read_record(f, data, root, warnings, flag_names, index)
        if rec is not None:
            n += 1
            yield rec
    if not n:
        raise DataError(path, "holds no labelme JSON file zoo could read"
                        + (f" (first problem: {warnings[0]})" if warnings else ""))


def read(path: str | Path, *, labels=None, images: Path | None = None) -> Dataset:
    """Read a labelme folder (all ``*.json`` below it) or a single labelme JSON file; an
    image not beside its JSON is looked for by file name below ``images`` (``--images``)."""
    path = Path(path)
    builder = DatasetBuilder(path.parent if path.is_file() else path, "labelme", labels=labels)
    for record in iter_records(path, builder.warnings, builder.class_names_found, images):
        builder.add(record)
    return builder.build()


def _points(raw, file: Path, idx: int, warnings: list[Problem]) -> list[float] | None:
    """The shape's points flattened to ``[x0, y0, x1, y1, ...]``, or None (with a warning)
    when they are not pairs of finite numbers. This is the hot loop: one flattening, one
    ``sum`` (a TypeError for non-numbers, NaN/inf for non-finite ones) checks them all."""
    if not isinstance(raw, list):
        warn(warnings, file, "'points' is not a list; shape skipped", idx)
        return None
    try:
        flat = [c for p in raw for c in p]
        ok = len(flat) == 2 * len(raw) and math.isfinite(sum(flat))
    except TypeError:
        ok = False
    if ok:
        return flat
    bads = [p for p in raw if not (isinstance(p, (list, tuple)) and len(p) >= 2 and finite(p[0]) and finite(p[1]))]
    if not bads:  # pairs with extra values ([x, y, z]): keep x, y
        return [float(c) for p in raw for c in p[:2]]
    warn(warnings, file, f"point {bads[0]!r} is not two finite numbers; shape skipped", idx)
    return None


class _Group:
    """Shapes that make one instance."""

    __slots__ = ("label", "polygons", "box", "masks", "first", "kpts", "kpt_shapes", "extent", "difficult")

    def __init__(self, label, first):
        self.label = label
        self.polygons: list[list[float]] = []
        self.box = None
        self.masks: list = []
        self.first = first
        self.kpts: dict | None = None
        self.kpt_shapes: dict[str, int] = {}  # keypoint name -> the index of its point shape
        self.difficult = False
        self.extent = [math.inf, math.inf, -math.inf, -math.inf]

    def grow(self, x0, y0, x1, y1):
        e = self.extent
        if x0 < e[0]:
            e[0] = x0
        if y0 < e[1]:
            e[1] = y0
        if x1 > e[2]:
            e[2] = x1
        if y1 > e[3]:
            e[3] = y1

    def add(self, part: _Part, s: dict, w: int, h: int) -> None:
        """One shape's geometry joined to the object (its extent grown to cover it)."""
        if part.covers is not None:
            self.grow(*part.covers)
        if s.get("difficult") is True:  # X-AnyLabeling: ignored for its own category
            self.difficult = True
        if part.polygons:
            self.polygons.extend(part.polygons)
            if part.extent is not None:
                self.grow(*part.extent)
            else:
                for p in part.polygons:
                    self.grow(min(p[0::2]), min(p[1::2]), max(p[0::2]), max(p[1::2]))
        if part.box is not None:
            box = part.box
            if self.box is not None or self.polygons or self.masks:
                self.polygons.append([box[0], box[1], box[2], box[1], box[2], box[3], box[0], box[3]])
            else:
                self.box = box
            self.grow(*box)
        if part.mask is not None:
            m, ox, oy = part.mask
            self.masks.append(part.mask)
            rows = np.flatnonzero(m.any(axis=1))
            cols = np.flatnonzero(m.any(axis=0))
            if len(rows):
                self.grow(float(max(0, ox + cols[0])), float(max(0, oy + rows[0])),
                          float(min(w, ox + cols[-1] + 1)), float(min(h, oy + rows[-1] + 1)))

    def rle(self, h: int, w: int) -> dict | None:
        """The object's masks, polygons and box painted as one RLE; None when no pixel is set."""
        full = np.zeros((h, w), dtype=bool)
        for m, ox, oy in self.masks:
            ys0, xs0 = max(0, oy), max(0, ox)
            ys1, xs1 = min(h, oy + m.shape[0]), min(w, ox + m.shape[1])
            if ys1 > ys0 and xs1 > xs0:
                full[ys0:ys1, xs0:xs1] |= m[ys0 - oy:ys1 - oy, xs0 - ox:xs1 - ox]
        if self.polygons:
            full |= raster.polygons_mask(self.polygons, h, w)
        if self.box is not None:
            full |= raster.box_mask(self.box, h, w)
        return raster.mask_to_rle(full) if full.any() else None

    def contains(self, x, y) -> bool:
        e = self.extent
        if not (e[0] <= x <= e[2] and e[1] <= y <= e[3]):
            return False
        if self.box is not None and not self.polygons and not self.masks:
            return True
        if any(_in_polygon(x, y, p) for p in self.polygons):
            return True
        for m, ox, oy in self.masks:
            r, c = int(y) - oy, int(x) - ox
            if 0 <= r < m.shape[0] and 0 <= c < m.shape[1] and m[r, c]:
                return True
        return self.box is not None and self.box[0] <= x <= self.box[2] and self.box[1] <= y <= self.box[3]


def _in_polygon(x, y, poly) -> bool:
    inside = False
    n = len(poly) // 2
    j = n - 1
    for i in range(n):
        xi, yi, xj, yj = poly[2 * i], poly[2 * i + 1], poly[2 * j], poly[2 * j + 1]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


MAX_CIRCLE_VERTICES = 2048  # labelme's rule keeps a circle within a pixel up to r ~ 850,000 px


def circle_polygon(cx, cy, px, py) -> list[float]:
    r = math.hypot(px - cx, py - cy)
    # 1 - 1/r rounds to 1 (acos 0, a division by zero) for r past ~1e16, and a huge radius
    # would ask for millions of vertices: capped, the circle is clipped to the image anyway
    n = 12 if r <= 1 else (MAX_CIRCLE_VERTICES if r > 1e6 else max(int(math.pi / math.acos(1 - 1 / r)), 12))
    n = min(n, MAX_CIRCLE_VERTICES)
    out = []
    for i in range(n):
        a = 2 * math.pi * i / n
        out += (cx + r * math.sin(a), cy + r * math.cos(a))
    return out


def stroke_polygons(pts, width=LINE_WIDTH) -> list[list[float]]:
    h = width / 2
    out = []
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        dx, dy = x1 - x0, y1 - y0
        n = math.hypot(dx, dy)
        if n == 0:
            continue
        nx, ny = -dy / n * h, dx / n * h
        out.append([x0 + nx, y0 + ny, x1 + nx, y1 + ny, x1 - nx, y1 - ny, x0 - nx, y0 - ny])
    return out


def _decode_mask(b64: str, w: int, h: int):
    """A labelme ``mask`` (a crop of the image as a PNG) as a bool array; an error when it
    is larger than the image (decoding a bomb would exhaust memory)."""
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    if img.width > w or img.height > h:
        raise ValueError(f"it is {img.width}x{img.height}, larger than the {w}x{h} image")
    return np.asarray(img.convert("L")) > 0 if img.mode not in ("1", "L", "P") else np.asarray(img) > 0


def _clip(pts, w, h):
    out, clipped = [], False
    for x, y in pts:
        cx = 0.0 if x < 0 else (float(w) if x > w else x)
        cy = 0.0 if y < 0 else (float(h) if y > h else y)
        clipped |= cx != x or cy != y
        out.append((cx, cy))
    return out, clipped


def read_record(f: Path, data: dict, root: Path, warnings: list[Problem], flag_names: set[str],
                index=None) -> DraftRecord | None:
    """One labelme file as a DraftRecord (label names, see zoo.data.builder); None (with a
    warning) when its image can be neither found nor decoded from ``imageData``."""
    image = _image_record(f, data, root, warnings, index)
    if image is None:
        return None
    classes = _flag_labels(data.get("flags"), flag_names)
    return DraftRecord(image, shape_instances(f, image.width, image.height, data["shapes"], warnings), classes)


def shape_instances(f: Path, width: int, height: int, shapes_in: list, warnings: list[Problem]) -> list[DraftInstance]:
    """labelme shape dicts as objects, by labelme's rules (``group_id``, points as keypoints,
    clipping, every check of adapters/POLICY.md). Other readers whose shapes are labelme's
    under other names (CVAT XML) translate them and come here. A ``mask`` shape may carry
    ``mask_array``, a bool array placed at its first point, instead of the base64 PNG."""
    shapes = _Shapes(f, width, height, warnings)
    for idx, s in enumerate(shapes_in):
        shapes.add(idx, s)
    shapes.attach_points()
    return shapes.instances()


def _image_record(f: Path, data: dict, root: Path, warnings: list[Problem], index) -> ImageRecord | None:
    """The image of a labelme file (no annotations yet): the file ``imagePath`` names (see
    the module doc), else the embedded ``imageData``; its size from the image's header."""
    rel = f.relative_to(root).with_suffix("").as_posix() if f != root else f.stem
    image_path = data.get("imagePath")
    named = image_path if isinstance(image_path, str) else None
    image_data = data.get("imageData")
    file = find_image(f, named)
    if file is None and index is not None and not image_data:
        file = index.find_one(named, f) or index.find_stem(f.stem)
    dw, dh = data.get("imageWidth"), data.get("imageHeight")
    declared = (dw, dh) if _positive_int(dw) and _positive_int(dh) else (None, None)
    if file is not None:
        try:
            w, h = checked_image_size(file, declared, f, warnings)
            return ImageRecord(id=rel, width=w, height=h, file=file, source=Source(str(f)))
        except DataError as e:  # never used or copied: it is not an image (or is a bomb)
            warn(warnings, f, f"image {file}: {e.reason}" + ("; its imageData is used" if image_data else "; image skipped"))
            if not image_data:
                return None
    if not image_data:
        warn(warnings, f, f"image not found (imagePath {image_path!r}, no file named {f.stem}.* beside it) "
                          "and no imageData; image skipped")
        return None
    try:
        raw = decode_image_data(image_data, f)
    except DataError as e:
        warn(warnings, f, f"{e.reason}; image skipped")
        return None
    w, h = checked_image_size(raw, declared, f, warnings)
    return ImageRecord(id=rel, width=w, height=h, embedded=f, source=Source(str(f)))


def _flag_labels(flags, flag_names: set[str]) -> list[str]:
    """The image's labels: its true ``flags`` (``__ignore__`` excluded); every flag name, true
    or not, goes to ``flag_names`` (the class vocabulary)."""
    labels = []
    if isinstance(flags, dict):
        for k, v in flags.items():
            if k == IGNORE_LABEL:
                continue
            flag_names.add(k)
            if v is True:
                labels.append(k)
    return labels


class _Part:
    """What one shape adds to its object: polygons (and their extent when already known), a
    box, a mask ``(bool array, x, y)`` placed at its corner, an extent to cover (a circle's)."""

    __slots__ = ("polygons", "extent", "box", "mask", "covers")

    def __init__(self, polygons=(), extent=None, box=None, mask=None, covers=None):
        self.polygons = polygons
        self.extent = extent
        self.box = box
        self.mask = mask
        self.covers = covers


class _Shapes:
    """The shapes of one labelme file gathered into objects (:class:`_Group`) and points."""

    def __init__(self, f: Path, w: int, h: int, warnings: list[Problem]):
        self.f, self.w, self.h, self.warnings = f, w, h, warnings
        self.groups: dict = {}  # (label, group_id or ("shape", index)) -> _Group
        self.points: list = []  # (label, group_id, x, y, index)

    def warn(self, reason: str, idx: int) -> None:
        warn(self.warnings, self.f, reason, idx)

    def skip(self, reason: str, idx: int) -> None:
        """Warn about shape ``idx``, which is left out; None, what a handler then returns."""
        self.warn(reason, idx)

    def add(self, idx: int, s) -> None:
        """Shape number ``idx``: checked, made geometry by its type's handler (``SHAPES``) and
        added to its object, or skipped with a warning."""
        if not isinstance(s, dict):
            return self.skip("shape is not an object; skipped", idx)
        label = s.get("label")
        if not isinstance(label, str) or not label.strip():
            return self.skip(f"shape has no label ({label!r}); skipped", idx)
        label = label.strip()
        st = s.get("shape_type") or "polygon"
        if st in ("rotation", "quadrilateral"):  # X-AnyLabeling's rotated box: its 4 corners
            st = "polygon"
        pts = _points(s.get("points"), self.f, idx, self.warnings)
        if pts is None:
            return None
        if st != "polygon":
            pts = list(zip(pts[0::2], pts[1::2]))
        gid = s.get("group_id")
        if not (gid is None or isinstance(gid, str) or finite(gid)):
            return self.skip(f"group_id {gid!r} is not a number; shape skipped", idx)
        if st == "polygon" and gid is None and self._add_lone_polygon(label, pts, s, idx):
            return None
        handler = SHAPES.get(st) if isinstance(st, str) else None  # a file may hold any JSON there
        if handler is None:
            return self.skip(f"unknown shape type '{st}'; skipped", idx)
        part = handler(self, idx, st, pts, s, label, gid)
        if part is not None:
            self._group(label, gid, idx).add(part, s, self.w, self.h)
        return None

    def _add_lone_polygon(self, label: str, pts: list[float], s: dict, idx: int) -> bool:
        """The common case, kept short: a polygon of its own lying inside the image."""
        if len(pts) < 6:
            return False
        xs, ys = pts[0::2], pts[1::2]
        x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        if not (x0 >= 0 and y0 >= 0 and x1 <= self.w and y1 <= self.h):
            return False
        g = self.groups[(label, ("shape", idx))] = _Group(label, idx)
        g.polygons.append(pts)
        g.extent = [x0, y0, x1, y1]
        g.difficult = s.get("difficult") is True
        return True

    def _group(self, label: str, gid, idx: int) -> _Group:
        """The object a shape belongs to: shapes with the same (label, group_id) make one."""
        key = (label, gid) if gid is not None else (label, ("shape", idx))
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = _Group(label, idx)
        return g

    def clip_points(self, st: str, pts, idx: int):
        """The points pulled onto the image's border (a warning when any moved)."""
        out, clipped = _clip(pts, self.w, self.h)
        if clipped:
            self.warn(f"{st} has points outside the {self.w}x{self.h} image; clipped to its edges", idx)
        return out

    def attach_points(self) -> None:
        """Each point shape as a keypoint of its object: the object of its group_id, else the
        smallest object containing it."""
        by_gid: dict = {}
        for (label, gid), g in self.groups.items():
            if not isinstance(gid, tuple) and label != IGNORE_LABEL:
                by_gid.setdefault(gid, []).append(g)
        for label, gid, x, y, idx in self.points:
            if label == IGNORE_LABEL:
                continue
            owner = self._owner_by_group(label, gid, by_gid, idx) if gid is not None else self._owner_around(label, x, y, idx)
            if owner is None:
                continue
            if owner.kpts is None:
                owner.kpts = {}
            if label in owner.kpts:
                self.warn(f"keypoint '{label}' given twice to one object; the first kept", idx)
                continue
            owner.kpts[label] = (x, y, 2)
            owner.kpt_shapes[label] = idx

    def _owner_by_group(self, label: str, gid, by_gid: dict, idx: int) -> _Group | None:
        owners = by_gid.get(gid)
        if not owners:
            self.warn(f"point '{label}' has group_id {gid} but no box or polygon has it; skipped", idx)
            return None
        if len(owners) > 1:
            self.warn(f"group_id {gid} has objects of several labels; point '{label}' "
                      f"given to the first ('{owners[0].label}')", idx)
        return owners[0]

    def _owner_around(self, label: str, x: float, y: float, idx: int) -> _Group | None:
        inside = [g for g in self.groups.values() if g.label != IGNORE_LABEL and g.contains(x, y)]
        if not inside:
            self.warn(f"point '{label}' has no group_id and lies in no object; skipped", idx)
            return None
        return min(inside, key=lambda g: (g.extent[2] - g.extent[0]) * (g.extent[3] - g.extent[1]))

    def instances(self) -> list[DraftInstance]:
        """The objects in the order of their first shape; one with masks as one RLE."""
        out = []
        fstr = str(self.f)
        for g in sorted(self.groups.values(), key=lambda g: g.first):
            rle = None
            if g.masks:
                rle = g.rle(self.h, self.w)
                if rle is None:
                    warn(self.warnings, fstr, "mask is empty; skipped", g.first)
                    continue
            ignore = g.label == IGNORE_LABEL
            out.append(DraftInstance(
                label=None if ignore else g.label,
                bbox=tuple(g.extent),
                polygons=g.polygons if rle is None else [],
                mask=rle,
                keypoints=g.kpts,
                ignore=ignore or g.difficult,
                source=Source(fstr, g.first),
                keypoint_shapes=g.kpt_shapes or None,
            ))
        return out


# ---- one handler per shape type: (shapes, index, type, points, shape, label, group_id) -> _Part or None


def _polygon(shapes: _Shapes, idx, st, pts, s, label, gid) -> _Part | None:
    if len(pts) < 6:
        return shapes.skip(f"polygon has {len(pts) // 2} point(s) (needs 3); skipped", idx)
    # the extent from the flat list, clipping only when needed
    xs, ys = pts[0::2], pts[1::2]
    ext = [min(xs), min(ys), max(xs), max(ys)]
    w, h = shapes.w, shapes.h
    if ext[0] < 0 or ext[1] < 0 or ext[2] > w or ext[3] > h:
        fw, fh = float(w), float(h)
        pts = [min(max(v, 0.0), fw if i % 2 == 0 else fh) for i, v in enumerate(pts)]
        xs, ys = pts[0::2], pts[1::2]
        ext = [min(xs), min(ys), max(xs), max(ys)]
        shapes.warn(f"{st} has points outside the {w}x{h} image; clipped to its edges", idx)
    return _Part(polygons=[pts], extent=tuple(ext))


def _rectangle(shapes: _Shapes, idx, st, pts, s, label, gid) -> _Part | None:
    if len(pts) not in (2, 4):
        return shapes.skip(f"rectangle has {len(pts)} points (needs 2 or 4); skipped", idx)
    pts = shapes.clip_points(st, pts, idx)
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    box = (min(xs), min(ys), max(xs), max(ys))
    if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
        return shapes.skip(f"rectangle has zero area ({box[2] - box[0]:g} x {box[3] - box[1]:g}); skipped", idx)
    return _Part(box=box)


def _circle(shapes: _Shapes, idx, st, pts, s, label, gid) -> _Part | None:
    if len(pts) != 2:
        return shapes.skip(f"circle has {len(pts)} points (needs centre and rim); skipped", idx)
    (cx, cy), (px, py) = pts
    rad = math.hypot(px - cx, py - cy)
    if rad == 0:
        return shapes.skip("circle has radius 0; skipped", idx)
    w, h = shapes.w, shapes.h
    poly = circle_polygon(cx, cy, px, py)
    clipped, moved = _clip(list(zip(poly[0::2], poly[1::2])), w, h)
    if moved:
        shapes.warn(f"circle reaches outside the {w}x{h} image; clipped to its edges", idx)
    # the box of a circle is the circle's, not its polygon's (inside by up to a pixel)
    covers = (max(0.0, cx - rad), max(0.0, cy - rad), min(float(w), cx + rad), min(float(h), cy + rad))
    return _Part(polygons=[[v for p in clipped for v in p]], covers=covers)


def _stroke(shapes: _Shapes, idx, st, pts, s, label, gid) -> _Part | None:
    """``line`` / ``linestrip``: a LINE_WIDTH-wide stroke, one quad per segment."""
    if len(pts) < 2:
        return shapes.skip(f"{st} has {len(pts)} point(s) (needs 2); skipped", idx)
    polys = []
    for q in stroke_polygons(shapes.clip_points(st, pts, idx)):
        cq, _ = _clip(list(zip(q[0::2], q[1::2])), shapes.w, shapes.h)
        polys.append([v for p in cq for v in p])
    if not polys:
        return shapes.skip(f"{st} has zero length; skipped", idx)
    return _Part(polygons=polys)


def _mask(shapes: _Shapes, idx, st, pts, s, label, gid) -> _Part | None:
    """A base64 PNG placed at its first corner (truncated to whole pixels, as labelme does)."""
    given = s.get("mask_array")
    if len(pts) != 2 or not (s.get("mask") or given is not None):
        return shapes.skip("mask shape needs 2 corner points and a base64 'mask' PNG; skipped", idx)
    shapes.clip_points(st, pts, idx)  # only warns: the PNG is cut to the image below
    w, h = shapes.w, shapes.h
    try:
        m = given if given is not None else _decode_mask(s["mask"], w, h)
    except Exception as e:  # noqa: BLE001 -- any undecodable payload is the same user problem
        return shapes.skip(f"mask is not a base64 PNG ({e}); skipped", idx)
    ox, oy = int(pts[0][0]), int(pts[0][1])
    # only the part over the image is kept: memory follows the image, not the PNG
    m = m[max(0, -oy):max(0, h - oy), max(0, -ox):max(0, w - ox)]
    if not m.any():
        return shapes.skip("mask lies outside the image; skipped", idx)
    return _Part(mask=(m, max(0, ox), max(0, oy)))


def _point(shapes: _Shapes, idx, st, pts, s, label, gid) -> None:
    """A keypoint: collected, and given to its object once every shape is read."""
    if len(pts) != 1:
        return shapes.skip(f"point shape has {len(pts)} points (needs 1); skipped", idx)
    ((x, y),), clipped = _clip(pts, shapes.w, shapes.h)
    if clipped:
        shapes.warn(f"point ({pts[0][0]:g}, {pts[0][1]:g}) lies outside the {shapes.w}x{shapes.h} image; clipped", idx)
    shapes.points.append((label, gid, x, y, idx))
    return None


#: labelme's shape types, each read by its handler ("rotation" and "quadrilateral", X-AnyLabeling's
#: rotated boxes, are read as the polygon of their corners).
SHAPES = {
    "polygon": _polygon,
    "rectangle": _rectangle,
    "circle": _circle,
    "line": _stroke,
    "linestrip": _stroke,
    "mask": _mask,
    "point": _point,
}
