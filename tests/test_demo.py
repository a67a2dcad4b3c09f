"""The built-in demo dataset: deterministic, small, and carrying every task's annotation."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from zoo.data.demo import CATEGORIES, CLASSES, DEFAULT_IMAGES, DEFAULT_SIZE, KEYPOINT_NAMES, ensure_demo, write_demo


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_and_prefix_stable(tmp_path):
    a = write_demo(tmp_path / "a", images=6, size=96, seed=3)
    b = write_demo(tmp_path / "b", images=6, size=96, seed=3)
    assert a == b
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    # One independent stream per image: a shorter demo is a prefix of a longer one.
    write_demo(tmp_path / "c", images=3, size=96, seed=3)
    da, dc = _digest(tmp_path / "a"), _digest(tmp_path / "c")
    assert all(da[name] == h for name, h in dc.items() if name != "zoo.yaml")
    # A different seed draws different smears.
    write_demo(tmp_path / "d", images=6, size=96, seed=4)
    assert _digest(tmp_path / "d")["smear_000.jpg"] != da["smear_000.jpg"]


def test_default_demo_fits_in_2mb_and_summary_is_true(tmp_path):
    summary = write_demo(tmp_path)
    files = list(tmp_path.iterdir())
    total = sum(p.stat().st_size for p in files)
    assert total <= 2 * 1024 * 1024
    assert summary["bytes"] == total
    assert summary["images"] == DEFAULT_IMAGES == len(list(tmp_path.glob("*.jpg")))
    counted = dict.fromkeys(CATEGORIES, 0)
    for p in tmp_path.glob("*.json"):
        for s in json.loads(p.read_text())["shapes"]:
            if s["label"] in counted:
                counted[s["label"]] += 1
    assert counted == summary["instances"]
    assert all(n >= 100 for n in counted.values()), counted
    assert summary["classes"] == {c: DEFAULT_IMAGES // 3 for c in CLASSES}
    with Image.open(tmp_path / "smear_000.jpg") as im:
        assert im.size == (DEFAULT_SIZE, DEFAULT_SIZE) and im.mode == "RGB"


def test_every_task_is_annotated_in_labelme_5_form(tmp_path):
    write_demo(tmp_path, images=3, size=128)
    meta = yaml.safe_load((tmp_path / "zoo.yaml").read_text())
    assert meta["categories"] == CATEGORIES
    assert meta["classes"] == CLASSES
    assert meta["keypoint_names"] == KEYPOINT_NAMES
    assert meta["flip_idx"] == [0, 3, 2, 1]
    assert len(meta["oks_sigmas"]) == 4
    types = set()
    for k in range(3):
        doc = json.loads((tmp_path / f"smear_{k:03d}.json").read_text())
        assert doc["imagePath"] == f"smear_{k:03d}.jpg" and doc["imageData"] is None
        assert (doc["imageWidth"], doc["imageHeight"]) == (128, 128)
        assert sum(doc["flags"].values()) == 1 and set(doc["flags"]) == set(CLASSES)
        cells = [s for s in doc["shapes"] if s["shape_type"] != "point"]
        points = [s for s in doc["shapes"] if s["shape_type"] == "point"]
        assert len({s["group_id"] for s in cells}) == len(cells)  # one group per cell
        assert len(points) == 4 * len(cells)
        for cell in cells:
            types.add((cell["label"], cell["shape_type"]))
            kps = {s["label"]: s["points"][0] for s in points if s["group_id"] == cell["group_id"]}
            assert list(kps) == KEYPOINT_NAMES
            xs, ys = zip(*kps.values())
            # top has the smallest y, right the largest x, ... and they lie on the cell
            assert kps["top"][1] == min(ys) and kps["bottom"][1] == max(ys)
            assert kps["left"][0] == min(xs) and kps["right"][0] == max(xs)
            if cell["shape_type"] == "rectangle":
                (x0, y0), (x1, y1) = cell["points"]
                assert math.isclose(kps["top"][1], y0) and math.isclose(kps["right"][0], x1)
            if cell["shape_type"] == "circle":
                (cx, cy), (px, py) = cell["points"]
                assert math.isclose(kps["top"][1], round(cy - math.hypot(px - cx, py - cy), 2), abs_tol=0.02)
    assert types == {("platelet", "rectangle"), ("rbc", "circle"), ("wbc", "polygon")}


def test_annotations_sit_on_the_drawn_cells(tmp_path):
    # The pixels inside an rbc circle are redder than the plasma around it, and a wbc
    # polygon holds dark nucleus pixels: the labels describe what is drawn.
    write_demo(tmp_path, images=1, size=160)
    img = np.asarray(Image.open(tmp_path / "smear_000.jpg"), dtype=float)
    doc = json.loads((tmp_path / "smear_000.json").read_text())
    for s in doc["shapes"]:
        if s["shape_type"] == "circle":
            (cx, cy), _ = s["points"]
            r, g, b = img[int(cy), int(cx) - 5]  # between the pale centre and the rim
            assert r - g > 40, (s, r, g, b)
    background = img[img.sum(-1) > 600]
    assert len(background) > 0.3 * img.shape[0] * img.shape[1]


def test_class_is_visible_at_a_glance(tmp_path):
    # The flags are learnable: red-cell coverage and nucleus purple separate the classes.
    write_demo(tmp_path, images=30, size=96)
    stats = {c: [] for c in CLASSES}
    for k in range(30):
        doc = json.loads((tmp_path / f"smear_{k:03d}.json").read_text())
        cls = next(c for c, on in doc["flags"].items() if on)
        img = np.asarray(Image.open(tmp_path / f"smear_{k:03d}.jpg"), dtype=float)
        red = ((img[..., 0] - img[..., 1]) > 70).mean()
        purple = ((img[..., 2] - img[..., 1]) > 50).mean()
        stats[cls].append((red, purple))
    red = {c: np.mean([s[0] for s in v]) for c, v in stats.items()}
    purple = {c: np.mean([s[1] for s in v]) for c, v in stats.items()}
    assert red["normal"] > 2 * red["anemia"]
    assert purple["leukocytosis"] > 2 * purple["normal"]


def test_ensure_demo_writes_once_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    first = ensure_demo()
    assert first == tmp_path / "home" / "demo" / "v1"
    assert (first / "zoo.yaml").is_file() and len(list(first.glob("*.jpg"))) == DEFAULT_IMAGES
    stamp = (first / "smear_000.jpg").stat().st_mtime_ns
    assert ensure_demo() == first
    assert (first / "smear_000.jpg").stat().st_mtime_ns == stamp  # reused, not rewritten
    assert [p.name for p in first.parent.iterdir()] == ["v1"]  # no temp folder left over


def test_demo_reads_through_zoo_reading(tiny_demo):
    from zoo.registry import get_registry

    if "labelme" not in get_registry().readers:
        pytest.skip("the labelme reader has not landed yet")
    from zoo.data.reading import read_dataset

    ds = read_dataset(tiny_demo)
    assert ds.categories == CATEGORIES
    assert ds.classes == CLASSES
    assert ds.keypoint_names == KEYPOINT_NAMES
    assert len(ds.images) == 12
    raw = json.loads((tiny_demo / "smear_000.json").read_text())
    rec = ds.images[0]
    assert rec.id == "smear_000"
    assert rec.labels == [CLASSES.index(next(c for c, on in raw["flags"].items() if on))]
    cells = [s for s in raw["shapes"] if s["shape_type"] != "point"]
    assert len(rec.instances) == len(cells)
    for inst in rec.instances:
        assert inst.keypoints is not None and len(inst.keypoints) == 4
        assert all(v == 2 for _, _, v in inst.keypoints)
        x0, y0, x1, y1 = inst.bbox
        top, right, bottom, left = inst.keypoints
        assert top[1] == pytest.approx(y0, abs=0.6) and bottom[1] == pytest.approx(y1, abs=0.6)
        assert left[0] == pytest.approx(x0, abs=0.6) and right[0] == pytest.approx(x1, abs=0.6)
