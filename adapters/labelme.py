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

from zoo.adapters.common import checked_image_size, decode_image_data, find_image, finite
from zoo.data.builder import DatasetBuilder, DraftInstance, DraftRecord, warn
from zoo.data.labels import IGNORE_LABEL
from zoo.dataset import Dataset, ImageRecord, Problem, Source
from zoo.errors import DataError
from zoo.files import is_file, read_head, read_json

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
    return 0.0


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


def iter_records(path: Path, warnings: list[Problem], flag_names: set[str]):
    """Yield one DraftRecord (label names, see zoo.data.builder) per labelme file, in sorted
    path order; problems go to ``warnings``, flag names to ``flag_names``. Streaming writers
    use this directly."""
    from zoo.progress import track

    path = Path(path)
    root = path.parent if path.is_file() else path
    files = list_files(path)
    n = 0
    from zoo.adapters.common import ImageIndex

    index = ImageIndex(root)
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


def read(path: str | Path, *, labels=None) -> Dataset:
    """Read a labelme folder (all ``*.json`` below it) or a single labelme JSON file."""
    path = Path(path)
    builder = DatasetBuilder(path.parent if path.is_file() else path, "labelme", labels=labels)
    for record in iter_records(path, builder.warnings, builder.class_names_found):
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

    __slots__ = ("label", "polygons", "box", "masks", "first", "kpts", "extent", "difficult")

    def __init__(self, label, first):
        self.label = label
        self.polygons: list[list[float]] = []
        self.box = None
        self.masks: list = []
        self.first = first
        self.kpts: dict | None = None
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
    """One labelme file as a DraftRecord (label names, see zoo.data.builder)."""
    rel = f.relative_to(root).with_suffix("").as_posix() if f != root else f.stem
    image_path = data.get("imagePath")
    named = image_path if isinstance(image_path, str) else None
    image_data = data.get("imageData")
    file = find_image(f, named)
    if file is None and index is not None and not image_data:
        file = index.find(named) or index.find_stem(f.stem)
    dw, dh = data.get("imageWidth"), data.get("imageHeight")
    declared = (dw, dh) if _positive_int(dw) and _positive_int(dh) else (None, None)
    w = h = None
    if file is not None:
        try:
            w, h = checked_image_size(file, declared, f, warnings)
        except DataError as e:  # never used or copied: it is not an image (or is a bomb)
            warn(warnings, f, f"image {file}: {e.reason}" + ("; its imageData is used" if image_data else "; image skipped"))
            if not image_data:
                return None
            file = None
    if file is None:
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
    flags = data.get("flags") or {}
    labels = []
    if isinstance(flags, dict):
        for k, v in flags.items():
            if k == IGNORE_LABEL:
                continue
            flag_names.add(k)
            if v is True:
                labels.append(k)
    fstr = str(f)
    groups: dict = {}
    points = []  # (label, group_id, x, y, idx)
    for idx, s in enumerate(data["shapes"]):
        if not isinstance(s, dict):
            warn(warnings, f, "shape is not an object; skipped", idx)
            continue
        label = s.get("label")
        if not isinstance(label, str) or not label.strip():
            warn(warnings, f, f"shape has no label ({label!r}); skipped", idx)
            continue
        label = label.strip()
        st = s.get("shape_type") or "polygon"
        if st in ("rotation", "quadrilateral"):  # X-AnyLabeling's rotated box: its 4 corners
            st = "polygon"
        pts = _points(s.get("points"), f, idx, warnings)
        if pts is None:
            continue
        if st != "polygon":
            pts = list(zip(pts[0::2], pts[1::2]))
        gid = s.get("group_id")
        if not (gid is None or isinstance(gid, str) or finite(gid)):
            warn(warnings, f, f"group_id {gid!r} is not a number; shape skipped", idx)
            continue
        if st == "polygon" and gid is None and len(pts) >= 6:
            # the common case, kept short: a lone polygon inside the image
            xs, ys = pts[0::2], pts[1::2]
            x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
            if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h:
                g = groups[(label, ("shape", idx))] = _Group(label, idx)
                g.polygons.append(pts)
                g.extent = [x0, y0, x1, y1]
                g.difficult = s.get("difficult") is True
                continue
        if st == "point":
            if len(pts) != 1:
                warn(warnings, f, f"point shape has {len(pts)} points (needs 1); skipped", idx)
                continue
            (x, y), clipped = _clip(pts, w, h)[0][0], _clip(pts, w, h)[1]
            if clipped:
                warn(warnings, f, f"point ({pts[0][0]:g}, {pts[0][1]:g}) lies outside the {w}x{h} image; clipped", idx)
            points.append((label, gid, x, y, idx))
            continue
        if st not in ("polygon", "rectangle", "circle", "line", "linestrip", "mask"):
            warn(warnings, f, f"unknown shape type '{st}'; skipped", idx)
            continue
        polys: list[list[float]] = []
        box = None
        mask = None
        circle_box = None
        if st == "polygon":
            if len(pts) < 6:
                warn(warnings, f, f"polygon has {len(pts) // 2} point(s) (needs 3); skipped", idx)
                continue
        elif st == "rectangle":
            if len(pts) not in (2, 4):
                warn(warnings, f, f"rectangle has {len(pts)} points (needs 2 or 4); skipped", idx)
                continue
        elif st == "circle":
            if len(pts) != 2:
                warn(warnings, f, f"circle has {len(pts)} points (needs centre and rim); skipped", idx)
                continue
        elif st in ("line", "linestrip"):
            if len(pts) < 2:
                warn(warnings, f, f"{st} has {len(pts)} point(s) (needs 2); skipped", idx)
                continue
        elif st == "mask":
            if len(pts) != 2 or not s.get("mask"):
                warn(warnings, f, "mask shape needs 2 corner points and a base64 'mask' PNG; skipped", idx)
                continue
        poly_ext = None
        if st == "polygon":  # the common case: extent from the flat list, clip only when needed
            xs, ys = pts[0::2], pts[1::2]
            ext = [min(xs), min(ys), max(xs), max(ys)]
            clipped = ext[0] < 0 or ext[1] < 0 or ext[2] > w or ext[3] > h
            if clipped:
                fw, fh = float(w), float(h)
                pts = [min(max(v, 0.0), fw if i % 2 == 0 else fh) for i, v in enumerate(pts)]
                xs, ys = pts[0::2], pts[1::2]
                ext = [min(xs), min(ys), max(xs), max(ys)]
            pts_c = None
        else:
            pts_c, clipped = _clip(pts, w, h) if st != "circle" else (pts, False)
        if clipped:
            warn(warnings, f, f"{st} has points outside the {w}x{h} image; clipped to its edges", idx)
        if st == "polygon":
            polys = [pts]
            poly_ext = tuple(ext)
        elif st == "rectangle":
            xs = [p[0] for p in pts_c]
            ys = [p[1] for p in pts_c]
            box = (min(xs), min(ys), max(xs), max(ys))
            if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
                warn(warnings, f, f"rectangle has zero area ({box[2] - box[0]:g} x {box[3] - box[1]:g}); skipped", idx)
                continue
        elif st == "circle":
            (cx, cy), (px, py) = pts
            if math.hypot(px - cx, py - cy) == 0:
                warn(warnings, f, "circle has radius 0; skipped", idx)
                continue
            poly = circle_polygon(cx, cy, px, py)
            rad = math.hypot(px - cx, py - cy)
            # the box of a circle is the circle's, not its polygon's (inside by up to a pixel)
            circle_box = (max(0.0, cx - rad), max(0.0, cy - rad), min(float(w), cx + rad), min(float(h), cy + rad))
            clipped_poly, c2 = _clip(list(zip(poly[0::2], poly[1::2])), w, h)
            if c2:
                warn(warnings, f, f"circle reaches outside the {w}x{h} image; clipped to its edges", idx)
            polys = [[v for p in clipped_poly for v in p]]
        elif st in ("line", "linestrip"):
            polys = []
            for q in stroke_polygons(pts_c):
                cq, _ = _clip(list(zip(q[0::2], q[1::2])), w, h)
                polys.append([v for p in cq for v in p])
            if not polys:
                warn(warnings, f, f"{st} has zero length; skipped", idx)
                continue
        elif st == "mask":
            try:
                m = _decode_mask(s["mask"], w, h)
            except Exception as e:  # noqa: BLE001 -- any undecodable payload is the same user problem
                warn(warnings, f, f"mask is not a base64 PNG ({e}); skipped", idx)
                continue
            ox, oy = int(pts[0][0]), int(pts[0][1])
            # only the part over the image is kept: memory follows the image, not the PNG
            m = m[max(0, -oy):max(0, h - oy), max(0, -ox):max(0, w - ox)]
            ox, oy = max(0, ox), max(0, oy)
            if not m.any():
                warn(warnings, f, "mask lies outside the image; skipped", idx)
                continue
            mask = (m, ox, oy)
        key = (label, gid) if gid is not None else (label, ("shape", idx))
        g = groups.get(key)
        if g is None:
            g = groups[key] = _Group(label, idx)
        if circle_box is not None:
            g.grow(*circle_box)
        if s.get("difficult") is True:  # X-AnyLabeling: ignored for its own category
            g.difficult = True
        if polys:
            g.polygons.extend(polys)
            if poly_ext is not None:
                g.grow(*poly_ext)
            else:
                for p in polys:
                    g.grow(min(p[0::2]), min(p[1::2]), max(p[0::2]), max(p[1::2]))
        if box is not None:
            if g.box is not None or g.polygons or g.masks:
                g.polygons.append([box[0], box[1], box[2], box[1], box[2], box[3], box[0], box[3]])
            else:
                g.box = box
            g.grow(*box)
        if mask is not None:
            m, ox, oy = mask
            g.masks.append(mask)

            rows = np.flatnonzero(m.any(axis=1))
            cols = np.flatnonzero(m.any(axis=0))
            if len(rows):
                g.grow(float(max(0, ox + cols[0])), float(max(0, oy + rows[0])),
                       float(min(w, ox + cols[-1] + 1)), float(min(h, oy + rows[-1] + 1)))

    # keypoints: by group_id, else the smallest object containing the point
    by_gid: dict = {}
    for (label, gid), g in groups.items():
        if not isinstance(gid, tuple) and label != IGNORE_LABEL:
            by_gid.setdefault(gid, []).append(g)
    for label, gid, x, y, idx in points:
        if label == IGNORE_LABEL:
            continue
        if gid is not None:
            owners = by_gid.get(gid)
            if not owners:
                warn(warnings, f, f"point '{label}' has group_id {gid} but no box or polygon has it; skipped", idx)
                continue
            if len(owners) > 1:
                warn(warnings, f, f"group_id {gid} has objects of several labels; point '{label}' "
                                  f"given to the first ('{owners[0].label}')", idx)
            owner = owners[0]
        else:
            inside = [g for g in groups.values() if g.label != IGNORE_LABEL and g.contains(x, y)]
            if not inside:
                warn(warnings, f, f"point '{label}' has no group_id and lies in no object; skipped", idx)
                continue
            owner = min(inside, key=lambda g: (g.extent[2] - g.extent[0]) * (g.extent[3] - g.extent[1]))
        if owner.kpts is None:
            owner.kpts = {}
        if label in owner.kpts:
            warn(warnings, f, f"keypoint '{label}' given twice to one object; the first kept", idx)
            continue
        owner.kpts[label] = (x, y, 2)

    instances = []
    for g in sorted(groups.values(), key=lambda g: g.first):
        x0, y0, x1, y1 = g.extent
        rle = None
        if g.masks:

            from zoo.data import raster

            full = np.zeros((h, w), dtype=bool)
            for m, ox, oy in g.masks:
                ys0, xs0 = max(0, oy), max(0, ox)
                ys1, xs1 = min(h, oy + m.shape[0]), min(w, ox + m.shape[1])
                if ys1 > ys0 and xs1 > xs0:
                    full[ys0:ys1, xs0:xs1] |= m[ys0 - oy:ys1 - oy, xs0 - ox:xs1 - ox]
            if g.polygons:
                full |= raster.polygons_mask(g.polygons, h, w)
            if g.box is not None:
                full |= raster.box_mask(g.box, h, w)
            rle = raster.mask_to_rle(full)
            if not full.any():
                warn(warnings, fstr, "mask is empty; skipped", g.first)
                continue
        ignore = g.label == IGNORE_LABEL
        instances.append(
            DraftInstance(
                label=None if ignore else g.label,
                bbox=(x0, y0, x1, y1),
                polygons=g.polygons if rle is None else [],
                mask=rle,
                keypoints=g.kpts,
                ignore=ignore or g.difficult,
                source=Source(fstr, g.first),
            )
        )
    image = ImageRecord(id=rel, width=w, height=h, file=file, embedded=f if file is None else None, source=Source(fstr))
    return DraftRecord(image, instances, labels)
