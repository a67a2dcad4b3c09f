"""Per-object masks (``--from objects``): the Data Science Bowl 2018 layout and the flat one,
soft edges, classes from sub-folders, and the class-folders reader refusing them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zoo.data.raster import rle_to_mask
from zoo.data.reading import detect_format, read_dataset
from zoo.errors import DataError

W, H = 48, 36


def _objects(k: int) -> list[np.ndarray]:
    """Two drawn objects of image k (the second soft-edged when ``k`` is odd)."""
    a = np.zeros((H, W), np.uint8)
    a[3 + k:10 + k, 4:15] = 255
    b = np.zeros((H, W), np.uint8)
    b[20:30, 25 + k:40] = 255
    if k % 2:
        b[19, 25 + k:40] = 90  # a faint anti-aliased row: below half, not the object
        b[20, 25 + k:40] = 180  # a strong one: the object
    return [a, b]


def _dsb(root, n=3):
    drawn = {}
    for k in range(n):
        rid = f"{k:04x}deadbeef"
        (root / rid / "images").mkdir(parents=True)
        (root / rid / "masks").mkdir()
        Image.fromarray(np.full((H, W, 3), 40 * k, np.uint8)).save(root / rid / "images" / f"{rid}.png")
        objs = _objects(k)
        for j, m in enumerate(objs):
            Image.fromarray(m).save(root / rid / "masks" / f"m{j}{rid[:3]}.png")
        drawn[rid] = [m >= 128 for m in objs]
    return drawn


def _same(ds, drawn):
    assert sorted(r.id for r in ds.images) == sorted(drawn)
    for rec in ds.images:
        got = [rle_to_mask(i.mask) for i in rec.instances]
        assert len(got) == len(drawn[rec.id])
        for g, d in zip(got, drawn[rec.id]):
            np.testing.assert_array_equal(g, d)


def test_data_science_bowl_layout_reads_one_object_per_mask(tmp_path):
    drawn = _dsb(tmp_path)
    assert detect_format(tmp_path) == "objects"
    ds = read_dataset(tmp_path)
    assert ds.format == "objects" and ds.categories == ["object"]
    _same(ds, drawn)
    assert any("soft (anti-aliased) edges" in p.reason for p in ds.warnings)
    with pytest.raises(DataError, match=r"images/, masks/ are parts of an image \+ mask set.*--from objects"):
        read_dataset(tmp_path, "folders")  # was: 3 classes and 6 masks as images, "clean"


def test_flat_layout_with_classes_from_sub_folders_and_labels(tmp_path):
    drawn = {}
    for k in range(2):
        (tmp_path / "train" / "images").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H)).save(tmp_path / "train" / "images" / f"s{k}.png")
        for j, (cls, m) in enumerate(zip(["nucleus", "cytoplasm"], _objects(0))):
            (tmp_path / "train" / "masks" / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(m).save(tmp_path / "train" / "masks" / cls / f"s{k}_{j + 1}.png")
        drawn[f"train/s{k}"] = [m >= 128 for m in _objects(0)]
    assert detect_format(tmp_path) == "objects"
    ds = read_dataset(tmp_path)
    assert ds.categories == ["cytoplasm", "nucleus"] and ds.splits == {"train": ["train/s0", "train/s1"]}
    by_class = {ds.categories[i.category]: rle_to_mask(i.mask) for i in ds.image("train/s0").instances}
    np.testing.assert_array_equal(by_class["nucleus"], drawn["train/s0"][0])
    np.testing.assert_array_equal(by_class["cytoplasm"], drawn["train/s0"][1])


def test_one_class_named_by_labels_txt_and_bad_masks(tmp_path):
    drawn = _dsb(tmp_path, n=2)
    (tmp_path / "labels.txt").write_text("nucleus\n")
    ds = read_dataset(tmp_path, "objects")
    assert ds.categories == ["nucleus"]
    _same(ds, drawn)
    rid = sorted(drawn)[0]
    Image.new("L", (W, H)).save(tmp_path / rid / "masks" / "empty.png")
    assert any(p.reason == "mask is empty; no object" for p in read_dataset(tmp_path, "objects").warnings)
    Image.new("L", (W + 1, H)).save(tmp_path / rid / "masks" / "wide.png")
    with pytest.raises(DataError, match=rf"wide\.png: is {W + 1}x{H} but its image {rid}\.png is {W}x{H}"):
        read_dataset(tmp_path, "objects")
