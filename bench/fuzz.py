"""Fuzz every reader: mutated annotation files must give a Dataset or a clean ZooError.

For each reader (labelme, coco, voc, yolo, folders) a small seed dataset is built in a
temporary folder; each case copies it, mutates one file (a JSON value swapped for a hostile
one, an XML text or attribute changed, a YOLO line rewritten, bytes cut or flipped, an
image swapped for a non-image or a decompression bomb), then reads it with
``zoo.data.reading.read_dataset`` (format named, and detected) and converts it with
``zoo.pipeline.convert.convert_folder`` to one writer's format (coco, masks, voc, yolo,
labelme in turn) and lints it with ``zoo.data.lint.lint_folder`` (``zoo check``). Outcomes:

* ``ok``: a Dataset (and the writes) came back;
* ``clean``: a ``ZooError`` (one line for the user);
* ``crash``: any other exception, a signal (segfault), running past the time cap, or the
  source folder's hash changing.

Cases run in worker processes under ``RLIMIT_AS`` (memory) and a per-case alarm (time); a
worker that dies is counted as one crash for the case it was on and a new worker goes on
from the next case. Peak memory is the largest worker's maximum RSS.

``--readers results,predict`` fuzzes the other doors (see :data:`TARGETS`): ``zoo eval``'s
predictions files (a COCO results JSON, PNG label maps, a classify CSV, each mutated as
above plus hostile values of their own: coordinates of 1e12, RLE counts past 2**32 or not
ASCII, a 30000x30000 PNG header, a CSV field of 200,000 characters) scored against the demo,
and ``zoo predict``'s images (its decoding gate, then the decode a backend makes).

Usage: ``python bench/fuzz.py [CASES_PER_READER] [--readers labelme,coco] [--seed N]
[--jobs N]`` (default 10,000 cases per reader; ``--jobs``: readers fuzzed at once). Prints one table row per reader and the first crash of
each kind (exception type and place).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

READERS = ("labelme", "coco", "voc", "yolo", "folders", "masks", "cvat", "objects")
WRITERS = ("coco", "masks", "voc", "yolo", "labelme")  # one per case, in turn
MEMORY_CAP = 3 << 30  # bytes of address space per worker
TIME_CAP = 20  # seconds per case

# ------------------------------------------------------------------ hostile values

LONG = "x" * 5000
EVIL_VALUES = [
    None, True, False, 0, -1, 1, 2, 7, 1e308, -1e308, float("nan"), float("inf"), 1e14, 1e17, 100000,
    2**63, -(2**63), "", "abc", "1.5", "nan", LONG, LONG + ".png", "a\nb", "../../etc/passwd",
    "/proc/self/environ", "/etc/hostname", "\x00", "..a.jpg", "_a.jpg", [], {}, [None], [[None, 1]],
    [1, 1], [5], [300000000, 3], ["a", "b"], [[1, 2], [3, None]], {"a": 1}, [{}], [[0, 0], [1e17, 1e17]],
    {"size": [10, 10], "counts": [100000]}, {"size": [100000, 100000], "counts": "abc"},
    {"size": [3, 3], "counts": "0`0"}, {"size": "x", "counts": [1, 2]}, [0, float("nan"), 3, 4],
    "iVBORw0KGgo=", "!!!notbase64", "aGVsbG8=",
]


def deep_json(n: int = 100_000) -> bytes:
    return b"[" * n + b"]" * n


def _paths(node, prefix=()):
    """Every (path, value) in a JSON tree, containers included."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _set(tree, path, value):
    if not path:
        return value
    node = tree
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return tree


def mutate_json(raw: bytes, rng: random.Random, extras: list) -> bytes:
    """One or a few values of the tree swapped for hostile ones (or keys dropped)."""
    tree = json.loads(raw)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        paths = list(_paths(tree))
        path, _ = rng.choice(paths)
        op = rng.random()
        if op < 0.15 and path:
            parent = tree
            for p in path[:-1]:
                parent = parent[p]
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, list) and parent:
                parent.pop(path[-1])
            continue
        value = rng.choice(EVIL_VALUES + extras)
        tree = _set(tree, path, json.loads(json.dumps(value)) if not isinstance(value, float) else value)
    return json.dumps(tree, allow_nan=True).encode()


def mutate_bytes(raw: bytes, rng: random.Random) -> bytes:
    op = rng.random()
    if op < 0.3:
        return raw[: rng.randrange(0, max(1, len(raw)))]
    b = bytearray(raw)
    for _ in range(rng.randint(1, 8)):
        if b:
            b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def mutate_xml(raw: bytes, rng: random.Random) -> bytes:
    import re

    texts = [m for m in re.finditer(rb">([^<]*)<", raw)]
    if not texts or rng.random() < 0.2:
        return mutate_bytes(raw, rng)
    out = raw
    for m in sorted(rng.sample(texts, min(len(texts), rng.choice((1, 2, 3)))), key=lambda m: -m.start()):
        v = rng.choice(EVIL_VALUES)
        val = (repr(v) if not isinstance(v, str) else v).replace("<", "").replace("&", "").encode("utf-8", "replace")
        out = out[: m.start(1)] + val + out[m.end(1):]
    return out


def mutate_lines(raw: bytes, rng: random.Random) -> bytes:
    lines = raw.decode("utf-8", "replace").splitlines() or [""]
    i = rng.randrange(len(lines))
    parts = lines[i].split() or ["0"]
    j = rng.randrange(len(parts) + 1)
    v = rng.choice(EVIL_VALUES)
    token = str(v) if not isinstance(v, (list, dict)) else json.dumps(v)
    if rng.random() < 0.5 and j < len(parts):
        parts[j] = token
    else:
        parts.insert(j, token)
    lines[i] = " ".join(parts)
    return "\n".join(lines).encode()


def mutate_yaml(raw: bytes, rng: random.Random) -> bytes:
    import yaml

    data = yaml.safe_load(raw)
    key = rng.choice(list(data) + ["kpt_shape", "names"])
    data[key] = rng.choice(EVIL_VALUES)
    try:
        return yaml.safe_dump(data, allow_unicode=True).encode()
    except Exception:  # noqa: BLE001 -- a value yaml cannot write: cut bytes instead
        return mutate_bytes(raw, rng)


# ------------------------------------------------------------------ hostile images

def bomb_png(w: int = 60000, h: int = 60000) -> bytes:
    """A tiny PNG declaring w x h 1-bit pixels (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((w + 7) // 8)
    body = zlib.compress(row * min(h, 64), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)) + \
        chunk(b"IDAT", body) + chunk(b"IEND", b"")


def hostile_image(raw: bytes, rng: random.Random) -> bytes:
    op = rng.random()
    if op < 0.25:
        return b"not an image at all\n"
    if op < 0.45:
        return bomb_png()
    if op < 0.7:
        return raw[: rng.randrange(8, max(9, len(raw)))]
    return mutate_bytes(raw, rng)


# ------------------------------------------------------------------ seeds

def _img(path: Path, size=(64, 48), color=(120, 30, 60)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


@functools.lru_cache(maxsize=None)
def _png_b64(size=(64, 48)) -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _mask_b64() -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (5, 4), 1).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def build_seed(reader: str, root: Path) -> Path:
    """A small valid dataset of every shape the reader knows, in ``root``; returns it."""
    if reader in TARGETS:
        return build_target_seed(reader, root)
    root.mkdir(parents=True)
    if reader == "labelme":
        shapes = [
            {"label": "cell", "points": [[2, 2], [20, 3], [18, 20], [3, 18]], "group_id": None, "shape_type": "polygon", "flags": {}},
            {"label": "cell", "points": [[30, 5], [50, 25]], "group_id": 1, "shape_type": "rectangle", "flags": {}},
            {"label": "head", "points": [[40, 10]], "group_id": 1, "shape_type": "point", "flags": {}},
            {"label": "blob", "points": [[20, 30], [25, 30]], "group_id": None, "shape_type": "circle", "flags": {}},
            {"label": "line", "points": [[5, 40], [30, 44], [60, 40]], "group_id": None, "shape_type": "linestrip", "flags": {}},
            {"label": "__ignore__", "points": [[50, 30], [60, 30], [60, 45]], "group_id": None, "shape_type": "polygon", "flags": {}},
            {"label": "blob", "points": [[10, 10], [14, 13]], "group_id": None, "shape_type": "mask", "flags": {}, "mask": _mask_b64()},
        ]
        for stem in ("a", "b"):
            _img(root / f"{stem}.png")
            data = {"version": "5.5.0", "flags": {"good": True}, "shapes": shapes, "imagePath": f"{stem}.png",
                    "imageData": None, "imageHeight": 48, "imageWidth": 64}
            (root / f"{stem}.json").write_text(json.dumps(data))
        data = {"version": "5.5.0", "flags": {}, "shapes": shapes[:2], "imagePath": "missing.png",
                "imageData": _png_b64(), "imageHeight": 48, "imageWidth": 64}
        (root / "c.json").write_text(json.dumps(data))
    elif reader == "coco":
        for stem in ("a", "b"):
            _img(root / "images" / f"{stem}.png")
        from zoo.data.raster import mask_to_rle
        import numpy as np

        m = np.zeros((48, 64), dtype=bool)
        m[5:20, 10:30] = True
        rle = mask_to_rle(m)
        data = {
            "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                       {"id": 2, "file_name": "b.png", "width": 64, "height": 48}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10], "area": 100, "iscrowd": 0,
                 "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]]},
                {"id": 2, "image_id": 1, "category_id": 2, "bbox": [10, 5, 20, 15], "area": 300, "iscrowd": 1,
                 "segmentation": rle},
                {"id": 3, "image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0,
                 "segmentation": {"size": [48, 64], "counts": [50, 10, 3012]},
                 "keypoints": [3, 3, 2, 4, 4, 1], "num_keypoints": 2},
            ],
            "categories": [{"id": 1, "name": "cell", "keypoints": ["a", "b"], "skeleton": [[1, 2]]},
                           {"id": 2, "name": "blob"}],
        }
        (root / "annotations.json").write_text(json.dumps(data))
    elif reader == "voc":
        for stem in ("a", "b"):
            _img(root / f"{stem}.jpg")
            (root / f"{stem}.xml").write_text(
                f"<annotation><folder>x</folder><filename>{stem}.jpg</filename><path>C:\\data\\{stem}.jpg</path>"
                "<size><width>64</width><height>48</height><depth>3</depth></size>"
                "<object><name>cell</name><difficult>0</difficult><bndbox><xmin>2</xmin><ymin>3</ymin>"
                "<xmax>20.5</xmax><ymax>30</ymax></bndbox></object>"
                "<object><name>blob</name><difficult>1</difficult><bndbox><xmin>30</xmin><ymin>10</ymin>"
                "<xmax>60</xmax><ymax>40</ymax></bndbox></object></annotation>")
    elif reader == "yolo":
        for stem in ("a", "b"):
            _img(root / "images" / "train" / f"{stem}.jpg")
            lf = root / "labels" / "train" / f"{stem}.txt"
            lf.parent.mkdir(parents=True, exist_ok=True)
            lf.write_text("0 0.5 0.5 0.2 0.3 0.5 0.5 2 0.55 0.45 1\n"
                          "1 0.2 0.2 0.1 0.1 0.2 0.2 2 0 0 0\n")
        (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/train\n"
                                        "names:\n  0: cell\n  1: blob\nkpt_shape: [2, 3]\n")
    elif reader == "folders":
        for cls, stems in (("cat", ("a", "b")), ("dog", ("c",))):
            for stem in stems:
                _img(root / cls / f"{stem}.png", color=(len(stem) * 40, 10, 10))
    elif reader == "masks":
        from PIL import Image

        (root / "SegmentationClass").mkdir()
        for stem, values in (("a", (0, 1, 2)), ("b", (0, 2, 255))):
            _img(root / "JPEGImages" / f"{stem}.png")
            m = Image.new("P", (64, 48), values[0])
            m.paste(values[1], (5, 5, 30, 20))
            m.paste(values[2], (35, 25, 60, 45))
            m.save(root / "SegmentationClass" / f"{stem}.png")
        (root / "class_names.txt").write_text("_background_\ncell\nblob\n")
    elif reader == "cvat":
        for stem in ("a", "b"):
            _img(root / "images" / f"{stem}.png")
        image = ('<image id="{k}" name="{stem}.png" width="64" height="48">'
                 '<box label="cell" occluded="1" xtl="2" ytl="3" xbr="20.5" ybr="30" z_order="1" group_id="4"/>'
                 '<points label="head" points="10,10" group_id="4"/>'
                 '<polygon label="blob" points="30,5;50,5;50,25" z_order="0"/>'
                 '<polyline label="line" points="5,40;30,44;60,40"/>'
                 '<ellipse label="blob" cx="40" cy="30" rx="6" ry="4" rotation="30"/>'
                 '<mask label="blob" rle="2, 3, 2, 3, 5" left="40" top="2" width="5" height="3"/>'
                 '<tag label="good"/></image>')
        (root / "annotations.xml").write_text("<annotations><version>1.1</version>"
                                              + "".join(image.format(k=k, stem=s) for k, s in enumerate("ab"))
                                              + "</annotations>")
    elif reader == "objects":
        from PIL import Image

        for rid in ("a", "b"):
            _img(root / rid / "images" / f"{rid}.png")
            (root / rid / "masks").mkdir()
            for k in range(2):
                m = Image.new("L", (64, 48), 0)
                m.paste(255, (5 + 20 * k, 5, 20 + 20 * k, 30))
                m.save(root / rid / "masks" / f"{k}.png")
    return root


def mutable_files(reader: str, root: Path) -> list[Path]:
    if reader == "results":  # the predictions, never the ground truth
        return sorted([root / "pred.json", root / "pred.csv", *(root / "masks").glob("*.png")])
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return files


# ------------------------------------------------------------------ zoo eval's and zoo predict's inputs

#: Beyond the readers: ``results`` (``zoo eval``'s predictions files: a COCO results JSON for
#: the instance tasks, PNG label maps, a classify CSV, against the demo's ground truth) and
#: ``predict`` (``zoo predict``'s images: its decoding gate, then the pixels a backend reads).
TARGETS = ("results", "predict")
INSTANCE_TASKS = ("detect", "instance-seg", "keypoint")


def build_target_seed(target: str, root: Path) -> Path:
    from zoo.data.demo import write_demo

    root.mkdir(parents=True)
    if target == "predict":
        write_demo(root / "images", images=3, size=48, seed=0)
        for f in (root / "images").glob("*.json"):
            f.unlink()
        (root / "images" / "zoo.yaml").unlink()
        return root
    from PIL import Image

    from zoo.data.raster import instance_mask, mask_to_rle, semantic_label_map
    from zoo.data.reading import read_dataset
    from zoo.evaluation.results import default_image_ids, predictions_to_coco_results
    from zoo.predictions import Detection, InstancePredictions

    write_demo(root / "gt", images=3, size=48, seed=0)
    ds = read_dataset(root / "gt")
    preds = [InstancePredictions(r.id, [
        Detection(i.category, 0.9, i.bbox, mask=mask_to_rle(instance_mask(i, r.height, r.width)),
                  keypoints=[(x, y, 1.0) for x, y, _ in i.keypoints] or None)
        for i in r.instances if not i.ignore]) for r in ds.images]
    (root / "pred.json").write_text(json.dumps(predictions_to_coco_results(preds, default_image_ids(ds))))
    (root / "masks").mkdir()
    for r in ds.images:
        Image.fromarray(semantic_label_map(r, ds)).save(root / "masks" / f"{r.id}.png")
    rows = [f"{r.id},{ds.classes[r.labels[0]] if r.labels else ds.classes[0]}" for r in ds.images]
    (root / "pred.csv").write_text("image,label\n" + "\n".join(rows) + "\n")
    return root


def mutate_target(target: str, root: Path, rng: random.Random) -> str:
    """One predictions file (``results``) or one image (``predict``) made hostile."""
    if target == "predict":
        f = rng.choice(sorted((root / "images").iterdir()))
        f.write_bytes(hostile_image(f.read_bytes(), rng))
        return f"image {f.name}"
    f = rng.choice(mutable_files(target, root))
    raw = f.read_bytes()
    r = rng.random()
    if f.suffix == ".png":
        f.write_bytes(hostile_image(raw, rng) if r < 0.5 else bomb_png(30000, 30000))
    elif r < 0.05:
        f.write_bytes(deep_json() if f.suffix == ".json" else b"\xff\xfe" + raw)
    elif r < 0.12:
        f.write_bytes(mutate_bytes(raw, rng))
    elif f.suffix == ".json":
        extras = [1e12, -1e8, 2**32, {"size": [48, 48], "counts": "0\u00e90"}, {"size": [-48, 48], "counts": [2304]},
                  {"size": [48, 48], "counts": [2**32, 0]}, [[0, 0, 1e12, 0, 1e12, 1e12]], [1], "a" * 200_000]
        f.write_bytes(mutate_json(raw, rng, extras))
    else:
        f.write_bytes(mutate_lines(raw, rng) if r < 0.9 else raw + b'x,"' + b"y" * 200_000 + b'"\n')
    return f"{f.suffix[1:]} {f.name}"


def run_target(target: str, root: Path, case: int, what: str) -> None:
    """What zoo eval / zoo predict do with the (mutated) input; a ZooError is the clean outcome.
    ``results``: only the mutated file is scored (the two others are the seed's own, unchanged:
    scoring them in every case tripled its time)."""
    if target == "predict":
        from zoo.pipeline.predict import _collect_images, _record

        for f, rid in _collect_images([root / "images"]):
            _record(f, rid).load_rgb()  # the gate, then the decode a backend makes
        return
    from zoo.pipeline.evaluate import evaluate_files

    kind = what.split(" ", 1)[0]  # mutate_target's "<suffix> <name>"
    task, pred = {"json": (INSTANCE_TASKS[case % 3], root / "pred.json"), "png": ("semantic-seg", root / "masks"),
                  "csv": ("classify", root / "pred.csv")}[kind]
    evaluate_files(task, root / "gt", pred, root / "metrics.json")


def mutate_case(reader: str, root: Path, rng: random.Random) -> str:
    """Mutate one file of the seed in place; returns what was done (for the report)."""
    files = mutable_files(reader, root)
    f = rng.choice(files)
    raw = f.read_bytes()
    suffix = f.suffix.lower()
    if suffix in (".png", ".jpg"):
        f.write_bytes(hostile_image(raw, rng))
        return f"image {f.name}"
    r = rng.random()
    if r < 0.05:
        f.write_bytes(deep_json() if suffix == ".json" else raw * 0)
        return f"deep/empty {f.name}"
    if r < 0.12:
        f.write_bytes(mutate_bytes(raw, rng))
        return f"bytes {f.name}"
    if suffix == ".json":
        extras = [_png_b64(), _png_b64((50000, 1))[:200], 10**6] if reader == "labelme" else []
        f.write_bytes(mutate_json(raw, rng, extras))
        return f"json {f.name}"
    if suffix == ".xml":
        f.write_bytes(mutate_xml(raw, rng))
        return f"xml {f.name}"
    if suffix == ".yaml":
        f.write_bytes(mutate_yaml(raw, rng))
        return f"yaml {f.name}"
    f.write_bytes(mutate_lines(raw, rng))
    return f"lines {f.name}"


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


# ------------------------------------------------------------------ one case

def run_case(reader: str, seed_root: Path, work: Path, case: int, seed: int) -> tuple[str, str]:
    """('ok' | 'clean' | 'crash', detail)."""
    from zoo.pipeline.convert import convert_folder
    from zoo.errors import ZooError
    from zoo.data.lint import lint_folder
    from zoo.data.reading import read_dataset

    rng = random.Random(f"{seed}-{reader}-{case}")
    src = work / "src"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(seed_root, src)
    if reader in TARGETS:
        return _run_target_case(reader, src, case, rng)
    what = mutate_case(reader, src, rng)
    before = tree_hash(src)
    try:
        try:
            read_dataset(src)  # detection too: a folder must not silently become another format
        except ZooError:
            pass
        to = WRITERS[case % len(WRITERS)]
        try:
            convert_folder(src, to=to, out=work / "out", fmt=reader)
        except ZooError:
            pass
        lint_folder(src, fmt=reader)  # zoo check: the same readers, then its own checks
        outcome = ("ok", what)
    except ZooError as e:
        outcome = ("clean", f"{what}: {str(e)[:120]}")
    except RecursionError:
        outcome = ("crash", f"{what}: RecursionError")
    except Exception as e:  # noqa: BLE001 -- every other exception is what this counts
        tb = traceback.extract_tb(e.__traceback__)
        where = next((f"{Path(t.filename).name}:{t.lineno}" for t in reversed(tb) if "/zoo/" in t.filename
                      or "/adapters/" in t.filename), f"{Path(tb[-1].filename).name}:{tb[-1].lineno}")
        outcome = ("crash", f"{what}: {type(e).__name__} at {where}: {str(e)[:100]}")
    if tree_hash(src) != before:
        outcome = ("crash", f"{what}: the source folder changed")
    return outcome


def _run_target_case(target: str, src: Path, case: int, rng: random.Random) -> tuple[str, str]:
    from zoo.errors import ZooError

    what = mutate_target(target, src, rng)
    try:
        run_target(target, src, case, what)
        return "ok", what
    except ZooError as e:
        return "clean", f"{what}: {str(e)[:120]}"
    except RecursionError:
        return "crash", f"{what}: RecursionError"
    except Exception as e:  # noqa: BLE001 -- every other exception is what this counts
        tb = traceback.extract_tb(e.__traceback__)
        where = next((f"{Path(t.filename).name}:{t.lineno}" for t in reversed(tb) if "/zoo/" in t.filename),
                     f"{Path(tb[-1].filename).name}:{tb[-1].lineno}")
        return "crash", f"{what}: {type(e).__name__} at {where}: {str(e)[:100]}"


def worker(reader: str, start: int, stop: int, seed: int, progress: Path) -> None:
    """Run cases [start, stop) in this process; append one JSON line per case to progress."""
    import logging

    logging.disable(logging.CRITICAL)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    # cases copy and hash small folders thousands of times: in memory when the machine has it
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    base = Path(tempfile.mkdtemp(prefix=f"zoo-fuzz-{reader}-", dir=shm))
    seed_root = build_seed(reader, base / "seed")

    def on_alarm(signum, frame):
        raise TimeoutError(f"case ran past {TIME_CAP} s")

    signal.signal(signal.SIGALRM, on_alarm)
    with open(progress, "a") as log:
        for case in range(start, stop):
            log.write(json.dumps({"case": case, "start": True}) + "\n")
            log.flush()
            signal.alarm(TIME_CAP)
            try:
                outcome, detail = run_case(reader, seed_root, base / "case", case, seed)
            except (TimeoutError, MemoryError) as e:
                outcome, detail = "crash", f"{type(e).__name__}: {e}"
            finally:
                signal.alarm(0)
            log.write(json.dumps({"case": case, "outcome": outcome, "detail": detail}) + "\n")
            log.flush()
    shutil.rmtree(base, ignore_errors=True)


def fuzz_reader(reader: str, cases: int, seed: int) -> dict:
    """Run ``cases`` cases of one reader in workers, restarting past a dead one."""
    progress = Path(tempfile.mkstemp(prefix=f"zoo-fuzz-{reader}-", suffix=".jsonl")[1])
    done: dict[int, tuple[str, str]] = {}
    peak = 0
    t0 = time.perf_counter()
    next_case = 0
    while next_case < cases:
        proc = subprocess.Popen([sys.executable, __file__, "--worker", reader, str(next_case), str(cases), str(seed),
                                 str(progress)])
        _, status, usage = os.wait4(proc.pid, 0)
        peak = max(peak, usage.ru_maxrss * 1024)
        started = None
        for line in progress.read_text().splitlines():
            rec = json.loads(line)
            if "outcome" in rec:
                done[rec["case"]] = (rec["outcome"], rec["detail"])
            else:
                started = rec["case"]
        if started is not None and started not in done:  # the worker died on this case
            sig = -os.waitstatus_to_exitcode(status) if os.WIFSIGNALED(status) else None
            why = signal.Signals(sig).name if sig else f"exit {os.waitstatus_to_exitcode(status)}"
            done[started] = ("crash", f"worker died ({why})")
            next_case = started + 1
        else:
            next_case = max(done, default=-1) + 1
    progress.unlink()
    counts = {k: sum(1 for o, _ in done.values() if o == k) for k in ("ok", "clean", "crash")}
    crashes: dict[str, str] = {}
    for case, (o, d) in sorted(done.items()):
        if o == "crash":
            crashes.setdefault(d.split(": ", 1)[-1][:80], f"case {case}: {d}")
    return {"reader": reader, "cases": len(done), **counts, "peak_rss": peak, "seconds": time.perf_counter() - t0,
            "crashes": crashes}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _, _, reader, start, stop, seed, progress = sys.argv
        worker(reader, int(start), int(stop), int(seed), Path(progress))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="?", type=int, default=10_000)
    ap.add_argument("--readers", default=",".join(READERS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    from concurrent.futures import ThreadPoolExecutor

    print("| reader | cases | ok | clean errors | crashes | peak memory | time |")
    print("|---|---|---|---|---|---|---|")
    with ThreadPoolExecutor(args.jobs) as pool:  # threads only wait: the work is in the workers
        results = list(pool.map(lambda reader: fuzz_reader(reader, args.cases, args.seed), args.readers.split(",")))
    for r in results:
        print(f"| {r['reader']} | {r['cases']:,} | {r['ok']:,} | {r['clean']:,} | {r['crash']} | "
              f"{r['peak_rss'] / 2**20:.0f} MiB | {r['seconds']:.0f} s |", flush=True)
    for r in results:
        for _, first in list(r["crashes"].items())[:20]:
            print(f"{r['reader']}: {first}")


if __name__ == "__main__":
    main()
