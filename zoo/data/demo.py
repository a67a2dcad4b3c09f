"""The built-in demo dataset: synthetic stained blood smears in labelme format.

One folder serves all five tasks, so every ``zoo run`` without ``--data`` has something to
learn from, on any backend, offline:

* three cell kinds (the categories, in this order): ``platelet`` (small purple fragments,
  boxed with a labelme *rectangle*, as annotators often do for tiny objects), ``rbc`` (pink
  discs with a pale centre, labelme *circles*) and ``wbc`` (larger lavender cells with a
  dark lobed nucleus, outlined with *polygons*);
* every cell shape has its own ``group_id``; four labelme ``point`` shapes with the same
  ``group_id`` mark its extreme points ``top``, ``right``, ``bottom``, ``left`` (keypoint
  task; skeleton is the ring top-right-bottom-left, a horizontal flip swaps right/left);
* image-level ``flags`` (classify), one true per image, each visible at a glance:

  - ``normal``: a dense field of well-stained red cells, at most one white cell;
  - ``anemia``: few red cells, paler and with a wider pale centre (hypochromic);
  - ``leukocytosis``: three to four white cells among the red ones.

* ``zoo.yaml`` at the root names the category order, the classes and the keypoint names,
  skeleton, flip permutation and OKS sigmas.

Everything is drawn with numpy from a seeded generator, one independent stream per image
(so ``images=8`` is a prefix of ``images=128``), and JPEG-encoded with PIL: the same seed
gives the same bytes. Coordinates follow :mod:`zoo.dataset` (pixel centres at ``i + 0.5``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Bump when the generator's output changes, so cached copies are rewritten.
DEMO_VERSION = "v1"
DEFAULT_IMAGES = 120
DEFAULT_SIZE = 160

CATEGORIES = ["platelet", "rbc", "wbc"]
CLASSES = ["anemia", "leukocytosis", "normal"]
KEYPOINT_NAMES = ["top", "right", "bottom", "left"]
SKELETON = [[0, 1], [1, 2], [2, 3], [3, 0]]
FLIP_IDX = [0, 3, 2, 1]  # horizontal flip: right <-> left
# Extreme points of a cell are sharp landmarks, but cells are small: 0.1 keeps a one-pixel
# miss on a platelet (area ~110 px) at OKS ~0.9 instead of ~0.6 with sigma 0.05.
OKS_SIGMAS = [0.1, 0.1, 0.1, 0.1]

# The class of image i cycles through these, so any prefix is balanced.
_CYCLE = ["normal", "anemia", "leukocytosis"]
_JPEG_QUALITY = 88


@dataclass
class _Cell:
    kind: str
    cx: float
    cy: float
    r: float  # nominal radius, for spacing
    phases: tuple = ()
    shape: dict[str, Any] = field(default_factory=dict)
    keypoints: list[tuple[float, float]] = field(default_factory=list)


def write_demo(
    out: str | Path,
    *,
    images: int = DEFAULT_IMAGES,
    size: int = DEFAULT_SIZE,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the demo dataset into ``out`` (created if needed); return a summary.

    The summary holds ``images``, ``instances`` (per category), ``classes`` (images per
    class), ``keypoints`` and ``bytes`` (total size written).
    """
    from PIL import Image

    if images < 1 or size < 32:
        raise ValueError(f"demo needs images >= 1 and size >= 32 (got {images}, {size})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    instances = dict.fromkeys(CATEGORIES, 0)
    classes = dict.fromkeys(CLASSES, 0)
    keypoints = 0
    total = 0
    for i in range(images):
        cls = _CYCLE[i % len(_CYCLE)]
        rng = np.random.default_rng([seed, i])
        pixels, cells = _draw_image(rng, size, cls)
        stem = f"smear_{i:03d}"
        image_path = out / f"{stem}.jpg"
        # Fixed encoder settings (no optimize/progressive, no EXIF) keep the bytes stable.
        Image.fromarray(pixels).save(image_path, format="JPEG", quality=_JPEG_QUALITY)
        doc = _labelme_doc(cells, cls, f"{stem}.jpg", size)
        json_path = out / f"{stem}.json"
        json_path.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
        total += image_path.stat().st_size + json_path.stat().st_size
        for c in cells:
            instances[c.kind] += 1
            keypoints += len(c.keypoints)
        classes[cls] += 1
    meta = out / "zoo.yaml"
    meta.write_text(_zoo_yaml(), encoding="utf-8")
    total += meta.stat().st_size
    return {
        "images": images,
        "instances": instances,
        "classes": classes,
        "keypoints": keypoints,
        "bytes": total,
    }


def demo_cache_dir() -> Path:
    """Where :func:`ensure_demo` keeps the default demo: ``$ZOO_HOME/demo/<version>``, else
    ``~/.cache/zoo/demo/<version>``."""
    home = os.environ.get("ZOO_HOME")
    base = Path(home) if home else Path.home() / ".cache" / "zoo"
    return base / "demo" / DEMO_VERSION


def ensure_demo() -> Path:
    """The default demo dataset, written once into the cache folder and reused.

    The demo is deterministic, so the cache only saves time. It is written into a temporary
    sibling folder and renamed into place, so a crash or a concurrent run never leaves a
    half-written demo behind.
    """
    target = demo_cache_dir()
    if (target / "zoo.yaml").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write_demo(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process got there first (target exists and is not empty): use theirs.
            if not (target / "zoo.yaml").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- drawing


def _draw_image(rng: np.random.Generator, size: int, cls: str) -> tuple[np.ndarray, list[_Cell]]:
    f = size / DEFAULT_SIZE  # cell sizes scale with the image
    img = _background(rng, size)
    counts = {
        "normal": {"rbc": rng.integers(10, 14), "wbc": rng.integers(0, 2), "platelet": rng.integers(3, 6)},
        "anemia": {"rbc": rng.integers(3, 6), "wbc": rng.integers(0, 2), "platelet": rng.integers(3, 6)},
        "leukocytosis": {"rbc": rng.integers(5, 8), "wbc": rng.integers(3, 5), "platelet": rng.integers(2, 5)},
    }[cls]
    radius = {
        "wbc": lambda: rng.uniform(13.0, 16.0) * f,
        "rbc": lambda: rng.uniform(8.5, 11.0) * f,
        "platelet": lambda: rng.uniform(5.2, 6.4) * f,
    }
    cells: list[_Cell] = []
    # Big cells first so the small ones fill the gaps; no overlaps keep every mask whole.
    for kind in ("wbc", "rbc", "platelet"):
        for _ in range(int(counts[kind])):
            r = radius[kind]()
            for _attempt in range(60):
                margin = r * 1.25 + 1.0
                cx = rng.uniform(margin, size - margin)
                cy = rng.uniform(margin, size - margin)
                if all(math.hypot(cx - c.cx, cy - c.cy) > (r + c.r) * 1.15 + 1.5 for c in cells):
                    cells.append(_Cell(kind, cx, cy, r))
                    break
    pale = cls == "anemia"
    for c in cells:
        if c.kind == "rbc":
            _draw_rbc(img, rng, c, pale)
        elif c.kind == "wbc":
            _draw_wbc(img, rng, c)
        else:
            _draw_platelet(img, rng, c)
    img = _optics(img, rng)
    # Reading order (top to bottom) for stable, human-friendly shape lists.
    cells.sort(key=lambda c: (round(c.cy, 3), round(c.cx, 3)))
    return img, cells


def _smooth_noise(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled bicubically."""
    from PIL import Image

    n = max(2, size // cell + 2)
    grid = rng.uniform(-1.0, 1.0, (n, n)).astype(np.float32)
    up = Image.fromarray(grid, mode="F").resize((size, size), Image.BICUBIC)
    return np.clip(np.asarray(up), -1.0, 1.0)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Pale pink-beige plasma with uneven staining and a little grain."""
    base = np.array([236.0, 216.0, 212.0]) + rng.uniform(-6, 6, 3)
    stain = _smooth_noise(rng, size, 40)[..., None] * np.array([7.0, 10.0, 6.0])
    mottle = _smooth_noise(rng, size, 10)[..., None] * np.array([4.0, 4.0, 5.0])
    return np.broadcast_to(base, (size, size, 3)) + stain + mottle


def _window(img: np.ndarray, c: _Cell, reach: float):
    """Pixel-centre coordinates of the square around a cell, relative to its centre."""
    h, w = img.shape[:2]
    x0, x1 = max(0, int(c.cx - reach)), min(w, int(c.cx + reach) + 2)
    y0, y1 = max(0, int(c.cy - reach)), min(h, int(c.cy + reach) + 2)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    return (slice(y0, y1), slice(x0, x1)), xs + 0.5 - c.cx, ys + 0.5 - c.cy


def _blend(img: np.ndarray, where, alpha: np.ndarray, color) -> None:
    patch = img[where]
    patch[...] = patch * (1.0 - alpha[..., None]) + np.asarray(color) * alpha[..., None]


def _irregular(rng: np.random.Generator, r: float, wobble: float) -> tuple:
    """Random low harmonics of an outline radius r(theta) = r * (1 + sum a cos(k theta + p))."""
    return tuple((k, rng.uniform(0, wobble) / k**0.5, rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5))


def _radius_at(c: _Cell, theta: np.ndarray) -> np.ndarray:
    out = np.ones_like(theta)
    for k, a, p in c.phases:
        out = out + a * np.cos(k * theta + p)
    return c.r * out


def _draw_rbc(img, rng, c: _Cell, pale: bool) -> None:
    where, dx, dy = _window(img, c, c.r + 2)
    d = np.hypot(dx, dy)
    alpha = np.clip(c.r - d + 0.5, 0.0, 1.0)
    if pale:  # hypochromic: lighter cell, wider pale centre
        rim = np.array([214.0, 128.0, 134.0]) + rng.uniform(-8, 8, 3)
        centre, pallor = np.array([238.0, 200.0, 198.0]), 0.62
    else:
        rim = np.array([196.0, 84.0, 92.0]) + rng.uniform(-10, 10, 3)
        centre, pallor = np.array([226.0, 150.0, 152.0]), 0.38
    t = np.clip((pallor * c.r - d) / (0.35 * c.r), 0.0, 1.0)[..., None]  # 1 in the pale centre
    color = rim * (1 - t) + centre * t
    patch = img[where]
    patch[...] = patch * (1.0 - alpha[..., None]) + color * alpha[..., None]
    c.shape = {"label": "rbc", "shape_type": "circle", "points": [[c.cx, c.cy], [c.cx + c.r, c.cy]]}
    c.keypoints = [(c.cx, c.cy - c.r), (c.cx + c.r, c.cy), (c.cx, c.cy + c.r), (c.cx - c.r, c.cy)]


def _irregular_body(img, c: _Cell, margin: float):
    """The window around a cell with an irregular outline, and its anti-aliased coverage."""
    where, dx, dy = _window(img, c, margin)
    theta = np.arctan2(dy, dx)
    alpha = np.clip(_radius_at(c, theta) - np.hypot(dx, dy) + 0.5, 0.0, 1.0)
    return where, dx, dy, alpha


def _draw_wbc(img, rng, c: _Cell) -> None:
    c.phases = _irregular(rng, c.r, 0.07)
    where, dx, dy, alpha = _irregular_body(img, c, c.r * 1.2 + 2)
    _blend(img, where, alpha, np.array([212.0, 188.0, 226.0]) + rng.uniform(-8, 8, 3))
    # A segmented nucleus: 2-4 overlapping lobes near the centre.
    nucleus = np.array([104.0, 44.0, 136.0]) + rng.uniform(-12, 12, 3)
    lobes = int(rng.integers(2, 5))
    start = rng.uniform(0, 2 * math.pi)
    lobe_alpha = np.zeros_like(alpha)
    for k in range(lobes):
        a = start + 2 * math.pi * k / lobes
        off = c.r * rng.uniform(0.22, 0.34)
        lr = c.r * rng.uniform(0.3, 0.4)
        dl = np.hypot(dx - off * math.cos(a), dy - off * math.sin(a))
        lobe_alpha = np.maximum(lobe_alpha, np.clip(lr - dl + 0.5, 0.0, 1.0))
    _blend(img, where, lobe_alpha * 0.95, nucleus)
    angles = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    rad = _radius_at(c, angles)
    xs, ys = c.cx + rad * np.cos(angles), c.cy + rad * np.sin(angles)
    c.shape = {"label": "wbc", "shape_type": "polygon", "points": np.stack([xs, ys], 1).tolist()}
    c.keypoints = _extremes(xs, ys)


def _draw_platelet(img, rng, c: _Cell) -> None:
    c.phases = _irregular(rng, c.r, 0.18)
    where, _, _, alpha = _irregular_body(img, c, c.r * 1.5 + 2)
    _blend(img, where, alpha, np.array([128.0, 70.0, 162.0]) + rng.uniform(-10, 10, 3))
    # The box and extreme points come from the drawn outline, sampled finely.
    angles = np.linspace(0, 2 * math.pi, 360, endpoint=False)
    rad = _radius_at(c, angles)
    xs, ys = c.cx + rad * np.cos(angles), c.cy + rad * np.sin(angles)
    c.shape = {
        "label": "platelet",
        "shape_type": "rectangle",
        "points": [[xs.min(), ys.min()], [xs.max(), ys.max()]],
    }
    c.keypoints = _extremes(xs, ys)


def _extremes(xs: np.ndarray, ys: np.ndarray) -> list[tuple[float, float]]:
    """Top, right, bottom, left extreme points of an outline."""
    t, r, b, l = int(ys.argmin()), int(xs.argmax()), int(ys.argmax()), int(xs.argmin())
    return [(xs[t], ys[t]), (xs[r], ys[r]), (xs[b], ys[b]), (xs[l], ys[l])]


def _optics(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A touch of defocus and sensor grain, then 8-bit RGB."""
    from PIL import Image, ImageFilter

    img = np.clip(img, 0, 255).astype(np.uint8)
    img = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float64)
    img = img + rng.normal(0.0, 2.5, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- labelme


def _r(v: float) -> float:
    return round(float(v), 2)


def _labelme_doc(cells: list[_Cell], cls: str, image_name: str, size: int) -> dict[str, Any]:
    shapes = []
    for gid, c in enumerate(cells, start=1):
        shapes.append(
            {
                "label": c.shape["label"],
                "points": [[_r(x), _r(y)] for x, y in c.shape["points"]],
                "group_id": gid,
                "description": "",
                "shape_type": c.shape["shape_type"],
                "flags": {},
                "mask": None,
            }
        )
        for name, (x, y) in zip(KEYPOINT_NAMES, c.keypoints):
            shapes.append(
                {
                    "label": name,
                    "points": [[_r(x), _r(y)]],
                    "group_id": gid,
                    "description": "",
                    "shape_type": "point",
                    "flags": {},
                    "mask": None,
                }
            )
    return {
        "version": "5.5.0",
        "flags": {name: name == cls for name in CLASSES},
        "shapes": shapes,
        "imagePath": image_name,
        "imageData": None,
        "imageHeight": size,
        "imageWidth": size,
    }


def _zoo_yaml() -> str:
    def flow(items) -> str:
        return "[" + ", ".join(str(i) for i in items) + "]"

    return (
        "# zoo dataset settings for the built-in demo (see zoo/data/demo.py).\n"
        f"categories: {flow(CATEGORIES)}\n"
        f"classes: {flow(CLASSES)}\n"
        f"keypoint_names: {flow(KEYPOINT_NAMES)}\n"
        f"skeleton: {flow(flow(p) for p in SKELETON)}\n"
        f"flip_idx: {flow(FLIP_IDX)}\n"
        f"oks_sigmas: {flow(OKS_SIGMAS)}\n"
    )
