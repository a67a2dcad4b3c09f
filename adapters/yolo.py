"""YOLO txt in (LabelImg's YOLO mode and the ultralytics layout) and out (detect, segment,
pose, classify).

Read:

* class names from ``classes.txt`` (LabelImg; blank lines tolerated) or ``data.yaml`` /
  ``dataset.yaml`` ``names`` (a list or an ``{id: name}`` mapping), and from data.yaml
  ``kpt_shape`` and ``flip_idx`` (zoo.yaml's flip_idx, when it has one, comes first);
* a label file is the image's stem + ``.txt`` beside the image, or in the ``labels/``
  folder mirroring ``images/`` (ultralytics);
* a line is ``class cx cy w h`` (a box), ``class x1 y1 x2 y2 ...`` (a polygon; 3+ points),
  or, when ``data.yaml`` has ``kpt_shape``, ``class cx cy w h`` + keypoints; coordinates
  are fractions of the image size (after EXIF orientation, as ultralytics measures it);
* an image without a label file is an image with no objects (a background image).

Written (``write``): ``images/<split>/``, ``labels/<split>/``, ``data.yaml`` (absolute
``path``, ``names``, and for pose ``kpt_shape``, ``flip_idx`` and ``kpt_names``, which the
reader reads back); classify writes ``<split>/<class>/<image>``. Splits: ``Dataset.splits``
when the source had them (or the ``splits`` argument), else the split ``zoo run`` draws by
default (20% val, seed 0); everything in ``train``, ``val`` pointing at it too, only when
that leaves val empty.
Ignored instances are left out (YOLO has no ignore).
"""

from __future__ import annotations

import math
from pathlib import Path

from zoo.adapters.common import image_size, visibility
from zoo.adapters.writing import OutputNames, copy_image, write_text
from zoo.data.builder import DatasetBuilder, DraftInstance, DraftRecord, warn
from zoo.data.dataset_config import load_dataset_config
from zoo.data.keypoints import flip_index
from zoo.data.raster import rle_to_mask
from zoo.data.reading import declined
from zoo.data.safe_paths import unique_safe_names
from zoo.data.split import make_split
from zoo.dataset import Dataset, ImageRecord, Source
from zoo.errors import DataError, ZooError
from zoo.files import IMAGE_SUFFIXES, decode_text, read_bytes, read_head, read_lines, read_yaml_mapping
from zoo.progress import track
from zoo.tasks import get_task


def _class_file(root: Path) -> Path | None:
    for name in ("classes.txt", "data.yaml", "dataset.yaml", "obj.names"):
        f = root / name
        if f.is_file():
            return f
    for f in sorted(root.rglob("classes.txt")):
        return f
    return None


def sniff(path: Path) -> float:
    path = Path(path)
    if not path.is_dir():
        return 0.0
    cf = _class_file(path)
    if cf is not None:
        n = 0
        for f in path.rglob("*.txt"):
            if f.name != "classes.txt" and _looks_like_labels(f):
                return 0.9
            n += 1
            if n > 50:
                break
    if (path / "labels").is_dir() and (path / "images").is_dir():
        # labels/ of mask PNGs beside images/ is an image + mask set, not YOLO
        if next((path / "labels").rglob("*.txt"), None) is not None:
            return 0.8
    return declined("no classes.txt / data.yaml beside label .txt files, and no images/ + labels/ of .txt")


def _read_yaml(f: Path) -> dict:
    return read_yaml_mapping(f, "keys with 'names'")


MAX_KEYPOINTS = 1000  # per object; COCO-WholeBody has 133


def _kpt_shape(v, f: Path) -> list[int] | None:
    """data.yaml's ``kpt_shape`` checked: [number of keypoints, 2 or 3], or None when absent."""
    if v is None:
        return None
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
            and 1 <= v[0] <= MAX_KEYPOINTS and v[1] in (2, 3)):
        raise DataError(f, f"kpt_shape {v!r} must be [number of keypoints (1..{MAX_KEYPOINTS}), 2 or 3]")
    return v


def _flip_idx(v, kpt_shape: list[int] | None, f: Path, warnings: list) -> list[int] | None:
    """data.yaml's ``flip_idx``: a permutation of the keypoints, else None (a bad one is a
    warning: the keypoints still read, they are just never flipped by it)."""
    if v is None or not kpt_shape:
        return None
    n = kpt_shape[0]
    if isinstance(v, list) and sorted(v) == list(range(n)) and all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        return list(v)
    warn(warnings, f, f"flip_idx {v!r} is not an order of the {n} keypoints; ignored")
    return None


def class_file(root: Path, warnings: list) -> tuple[list[str], list[int] | None, list[int] | None, Path | None]:
    """(names, kpt_shape or None, flip_idx or None, the file they came from)."""
    f = _class_file(root)
    if f is None:
        return [], None, None, None
    if f.suffix in (".yaml", ".yml"):
        data = _read_yaml(f)
        names = data.get("names")
        if isinstance(names, dict):
            try:
                names = [str(names[k]) for k in sorted(names, key=int)]
            except (TypeError, ValueError):
                raise DataError(f, "'names' keys must be class numbers") from None
        if not isinstance(names, list):
            raise DataError(f, "has no 'names' list")
        kpt_shape = _kpt_shape(data.get("kpt_shape"), f)
        return [str(n) for n in names], kpt_shape, _flip_idx(data.get("flip_idx"), kpt_shape, f, warnings), f
    return read_lines(f), None, None, f


def _label_file(img: Path, root: Path, listing: dict | None = None) -> Path:
    """The label file of ``img``: its stem + .txt beside it, or in ``labels/`` mirroring
    ``images/``; names matched case-insensitively when exactly one file matches (``listing``:
    a cache of each folder's names)."""
    beside = img.with_suffix(".txt")
    candidates = [beside]
    parts = list(img.relative_to(root).parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            candidates.append((root.joinpath(*parts)).with_suffix(".txt"))
            break
    for cand in candidates:
        if cand.is_file():
            return cand
    listing = {} if listing is None else listing
    for cand in candidates:
        if cand.parent not in listing:
            try:
                names = [p for p in cand.parent.iterdir() if p.suffix.lower() == ".txt"]
            except OSError:
                names = []
            listing[cand.parent] = {}
            for p in names:
                listing[cand.parent].setdefault(p.name.lower(), []).append(p)
        hits = listing[cand.parent].get(cand.name.lower(), [])
        if len(hits) > 1:
            raise DataError(img, f"has several label files up to case: {', '.join(h.name for h in hits)}; keep one")
        if hits:
            return hits[0]
    return beside


def read(path: str | Path, *, labels=None, images: Path | None = None) -> Dataset:
    """A YOLO folder; with ``images`` (``--images DIR``, CVAT's YOLO export without its
    images) the images are there and each finds its label file below the folder by stem
    (any case)."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(root, "a YOLO dataset is a folder (images, their .txt files and classes.txt)")
    builder = DatasetBuilder(root, "yolo", labels=labels)
    warnings = builder.warnings
    names, kpt_shape, builder.flip_idx, names_file = class_file(root, warnings)
    if not names:
        raise DataError(root, "no classes.txt or data.yaml with 'names' found; YOLO class numbers need names")
    builder.categories = names
    image_root = images if images is not None else root
    files = sorted((p for p in image_root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                   key=lambda p: p.relative_to(image_root).as_posix())
    label_of = _labels_by_stem(root, names_file) if images is not None else None
    by_id: dict[str, Path] = {}
    used_txt: set[Path] = set()
    listing: dict = {}  # each label folder's names, for case-insensitive matches
    for img in track(files, "reading YOLO", total=len(files)) if len(files) > 200 else files:
        rel = img.relative_to(image_root).with_suffix("").as_posix()
        if rel.startswith("images/"):
            rel = rel[len("images/"):]
        if rel in by_id:
            warn(warnings, img, f"shares its name with {by_id[rel].name} (same stem, so the same label "
                                "file); only the first is read")
            continue
        by_id[rel] = img
        try:
            w, h = image_size(img)
        except DataError as e:  # never used or copied
            warn(warnings, img, f"{e.reason}; skipped")
            continue
        lf = _label_file(img, root, listing) if label_of is None else label_of.get(img.stem.lower(), root / "-")
        instances = []
        if lf.is_file():
            used_txt.add(lf)
            instances = _read_labels(lf, w, h, names, kpt_shape, warnings)
        builder.add(DraftRecord(ImageRecord(id=rel, width=w, height=h, file=img, source=Source(str(lf))), instances))
    for txt in sorted(root.rglob("*.txt")):
        if txt in used_txt or txt == names_file or txt.name in ("classes.txt", "README.txt") or txt.parent.name in ("ImageSets", "Main"):
            continue
        if txt.parent.name == "labels" or any(p == "labels" for p in txt.relative_to(root).parts) or _looks_like_labels(txt):
            warn(warnings, txt, "label file without an image (no image with this stem); skipped")
    if not builder.records:
        raise DataError(root, "holds no images" + ("; its label files need them: pass --images DIR, the folder "
                                                   "that holds them" if any(p.reason.startswith("label file without")
                                                                            for p in warnings) else ""))
    if kpt_shape:
        config = load_dataset_config(root)
        builder.keypoint_names = (config.get("keypoint_names") or _kpt_names(names_file, int(kpt_shape[0]))
                                  or [f"kp{i}" for i in range(int(kpt_shape[0]))])
    return builder.build()


def _labels_by_stem(root: Path, names_file: Path | None) -> dict[str, Path]:
    """Label files below ``root`` by lower-cased stem (CVAT's ``obj_train_data/``)."""
    out: dict[str, Path] = {}
    for txt in sorted(root.rglob("*.txt")):
        if txt != names_file and txt.name not in ("classes.txt", "README.txt", "train.txt", "valid.txt", "test.txt"):
            out.setdefault(txt.stem.lower(), txt)
    return out


def _kpt_names(f: Path, n: int) -> list[str] | None:
    """data.yaml's ``kpt_names`` (ultralytics: ``{class: [name, ...]}``, the same list for
    every class when zoo wrote it; or one list), when it names all ``n`` points alike."""
    kpt = _read_yaml(f).get("kpt_names") if f.suffix in (".yaml", ".yml") else None
    lists = list(kpt.values()) if isinstance(kpt, dict) else [kpt] if kpt is not None else []
    first = [str(k) for k in lists[0]] if lists and isinstance(lists[0], list) else None
    if first and len(first) == n and all([str(k) for k in other] == first for other in lists if isinstance(other, list)):
        return first
    return None


def _looks_like_labels(txt: Path) -> bool:
    """Does one of the first lines read ``class x y ...`` (an integer then 4+ numbers)?"""
    head = read_head(txt, 4096).decode("utf-8", errors="replace")
    for line in [ln for ln in head.splitlines() if ln.strip()][:3]:
        parts = line.split()
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            continue
        if len(vals) >= 5 and vals[0].is_integer():
            return True
    return False


def _read_labels(lf: Path, w: int, h: int, names: list[str], kpt_shape, warnings) -> list[DraftInstance]:
    """The objects of one label file on a ``w x h`` image; a bad line is a warning."""
    out = []
    for idx, line in enumerate(decode_text(read_bytes(lf), lf).splitlines()):
        if line.strip():
            inst = _read_line(line, idx, lf, w, h, names, kpt_shape, warnings)
            if inst is not None:
                out.append(inst)
    return out


def _read_line(line: str, idx: int, lf: Path, w: int, h: int, names: list[str], kpt_shape,
               warnings) -> DraftInstance | None:
    """Line ``idx``: ``class`` then a box, a box and keypoints, or a polygon, in fractions of
    the image; pulled inside the image (a warning), None (a warning) when unreadable."""
    parts = line.split()
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        return warn(warnings, lf, f"line {idx + 1} is not numbers: {line.strip()[:60]!r}; skipped", idx)
    if not all(math.isfinite(v) for v in vals):
        return warn(warnings, lf, f"line {idx + 1} holds NaN or infinity; skipped", idx)
    c = vals[0]
    if not c.is_integer() or not 0 <= c < len(names):
        return warn(warnings, lf, f"line {idx + 1}: class {parts[0]} is not in 0..{len(names) - 1}; skipped", idx)
    coords = vals[1:]
    nk, kd = kpt_shape or (0, 0)
    clipped = False
    polygons: list[list[float]] = []
    kpts = None
    if nk and len(coords) == 4 + nk * kd:
        box_n = coords[:4]
        kpts, clipped = _keypoints(coords[4:], nk, kd, w, h)
    elif len(coords) == 4:
        box_n = coords
    elif len(coords) >= 6 and len(coords) % 2 == 0:
        polygons = [[v * (w if i % 2 == 0 else h) for i, v in enumerate(coords)]]
        box_n = None
    else:
        return warn(warnings, lf, f"line {idx + 1} has {len(coords)} numbers after the class "
                                  "(4 for a box, an even 6+ for a polygon); skipped", idx)
    if box_n is not None:
        cx, cy, bw, bh = box_n
        x0, y0, x1, y1 = (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h
    else:
        x0, y0, x1, y1 = min(polygons[0][0::2]), min(polygons[0][1::2]), max(polygons[0][0::2]), max(polygons[0][1::2])
    c_box = (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))
    if c_box != (x0, y0, x1, y1):
        clipped = True
    if polygons:
        p = polygons[0]
        q = [min(max(v, 0.0), float(w if i % 2 == 0 else h)) for i, v in enumerate(p)]
        clipped |= q != p
        polygons = [q]
    if clipped:
        warn(warnings, lf, f"line {idx + 1} reaches outside the image; clipped", idx)
    if c_box[2] - c_box[0] <= 0 or c_box[3] - c_box[1] <= 0:
        return warn(warnings, lf, f"line {idx + 1} has zero area; skipped", idx)
    return DraftInstance(names[int(c)], c_box, polygons, keypoints=kpts, source=Source(str(lf), idx))


def _keypoints(kp: list[float], nk: int, kd: int, w: int, h: int) -> tuple[dict[int, tuple], bool]:
    """The labelled points of ``nk`` keypoints of ``kd`` numbers each, by index, in pixels
    pulled inside the image, and whether any was pulled."""
    kpts = {}
    clipped = False
    for k in range(nk):
        x, y = kp[k * kd] * w, kp[k * kd + 1] * h
        v = visibility(kp[k * kd + 2]) if kd == 3 else 2
        if v > 0 or (kd == 2 and (x or y)):
            cx, cy = min(max(x, 0.0), float(w)), min(max(y, 0.0), float(h))
            clipped |= (cx, cy) != (x, y)  # (a huge fraction times the width is inf)
            kpts[k] = (cx, cy, v if v > 0 else 2)
    return kpts, clipped


# ---------------------------------------------------------------- writing


def _num(v: float) -> str:
    s = f"{v:.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _bridge(parts: list[list[float]]) -> list[float]:
    """Several polygon parts as one YOLO polygon: each part joined to the next by a
    zero-width corridor between their nearest vertices, and back."""
    if len(parts) == 1:
        return parts[0]
    pts = [list(zip(p[0::2], p[1::2])) for p in parts]
    out = list(pts[0])
    for part in pts[1:]:
        best = None
        for i, (ax, ay) in enumerate(out):
            for j, (bx, by) in enumerate(part):
                d = (ax - bx) ** 2 + (ay - by) ** 2
                if best is None or d < best[0]:
                    best = (d, i, j)
        _, i, j = best
        rot = part[j:] + part[:j] + [part[j]]
        out = out[: i + 1] + rot + out[i:]
    return [v for p in out for v in p]


def mask_polygons(rle: dict) -> list[list[float]]:
    """Outer contours of an RLE mask as flat polygons (pixel-corner coordinates)."""
    import cv2
    import numpy as np

    m = rle_to_mask(rle).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        c = c.reshape(-1, 2).astype(float)
        if len(c) >= 3:
            out.append([float(v) for v in (c + 0.5).ravel()])
    return out


def label_lines(rec: ImageRecord, dataset: Dataset, task: str) -> list[str]:
    w, h = rec.width, rec.height
    lines = []
    nk = len(dataset.keypoint_names)
    for inst in rec.instances:
        if inst.ignore or inst.category < 0:
            continue
        x0, y0, x1, y1 = inst.bbox
        box = [(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h]
        if task == "segment":
            parts = inst.polygons or (mask_polygons(inst.mask) if inst.mask else [[x0, y0, x1, y0, x1, y1, x0, y1]])
            if not parts:
                continue
            poly = _bridge(parts)
            vals = [v / (w if i % 2 == 0 else h) for i, v in enumerate(poly)]
        elif task == "pose":
            vals = list(box)
            kps = inst.keypoints or [(0.0, 0.0, 0)] * nk
            for x, y, v in kps:
                vals += [x / w, y / h, v] if v > 0 else [0, 0, 0]
        else:
            vals = box
        lines.append(" ".join([str(inst.category)] + [_num(v) if not isinstance(v, int) else str(v) for v in vals]))
    return lines


def _seeded_split(dataset: Dataset, task: str) -> dict[str, list[str]]:
    """The split ``zoo run`` draws by default (20% val, seed 0, stratified) for data that
    defines none, so data.yaml's ``val`` is held-out images, not the training ones; images
    the task cannot use go to train (background). Everything in train when val would be empty."""
    zoo_name = {"segment": "instance-seg", "pose": "keypoint"}.get(task, task)
    everything = {"train": [r.id for r in dataset.images]}
    try:
        split = make_split(dataset, get_task(zoo_name), val=0.2, seed=0, digest="-")  # the hash is not recorded
    except ZooError:  # too few images to hold any out
        return everything
    if not split.val:
        return everything
    held = set(split.val)
    return {"train": [r.id for r in dataset.images if r.id not in held], "val": list(split.val)}


def write(dataset: Dataset, out: Path, *, task: str | None = None, splits: dict[str, list[str]] | None = None) -> Path:
    """Write an ultralytics dataset for ``task`` (detect, segment, pose or classify; the
    zoo task names instance-seg / keypoint are accepted) and return its ``data.yaml``
    (classify: the folder)."""
    import yaml

    out = Path(out)
    task = {"instance-seg": "segment", "keypoint": "pose", None: "detect"}.get(task, task)
    if task not in ("detect", "segment", "pose", "classify"):
        raise DataError(out, f"YOLO writes detect, segment, pose or classify, not '{task}'")
    if task == "pose" and not dataset.keypoint_names:
        raise DataError(dataset.root or out, "pose needs keypoints, and this dataset has none")
    splits = splits or dataset.splits or _seeded_split(dataset, task)
    by_id = {r.id: r for r in dataset.images}
    names = OutputNames()
    if task == "classify":
        folders = unique_safe_names(dataset.classes)
        for split, ids in splits.items():
            for i in track(ids, f"writing YOLO classify {split}", total=len(ids)):
                rec = by_id[i]
                if len(rec.labels) != 1:
                    continue  # classify needs exactly one class per image
                copy_image(rec, out / split / folders[rec.labels[0]], stem=names(rec.id.replace("/", "__")))
        return out
    for split, ids in splits.items():
        for i in track(ids, f"writing YOLO {split}", total=len(ids)):
            rec = by_id[i]
            copy_image(rec, out / "images" / split, names(rec.id))
            write_text(out / "labels" / split, names(rec.id), ".txt", "".join(ln + "\n" for ln in label_lines(rec, dataset, task)))
    data = {
        "path": str(out.resolve()),
        "train": f"images/{'train' if 'train' in splits else next(iter(splits))}",
        "val": f"images/{'val' if 'val' in splits else ('train' if 'train' in splits else next(iter(splits)))}",
    }
    if "test" in splits:
        data["test"] = "images/test"
    data["names"] = dict(enumerate(dataset.categories))
    if task == "pose":
        data["kpt_shape"] = [len(dataset.keypoint_names), 3]
        data["flip_idx"] = flip_index(dataset.keypoint_names, dataset.flip_idx)
        data["kpt_names"] = {i: list(dataset.keypoint_names) for i in range(len(dataset.categories))}
    f = out / "data.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return f
