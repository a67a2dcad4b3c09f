"""zoo/data/raster.py: the one rasteriser."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from zoo.data import raster
from zoo.dataset import Dataset, ImageRecord, Instance


def test_rle_round_trip_and_pycocotools_agree():
    rng = np.random.default_rng(0)
    m = rng.random((37, 53)) > 0.6
    rle = raster.mask_to_rle(m)
    assert rle["size"] == [37, 53] and isinstance(rle["counts"], str)
    assert np.array_equal(raster.rle_to_mask(rle), m)
    assert raster.rle_area(rle) == m.sum()
    # uncompressed counts (COCO crowd annotations) decode too
    flat = m.flatten(order="F")
    counts, cur, run = [], False, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            cur, run = v, 0
        run += 1
    counts.append(run)
    assert np.array_equal(raster.rle_to_mask({"size": [37, 53], "counts": counts}), m)


def test_polygon_mask_is_labelme_rule_outline_included():
    # a 4x4 square from (2,2) to (6,6): PIL fills it with its outline, 5x5 pixels
    m = raster.polygons_mask([[2, 2, 6, 2, 6, 6, 2, 6]], 10, 10)
    assert m.sum() == 25 and m[2:7, 2:7].all()
    assert raster.box_mask((2, 2, 6, 6), 10, 10).sum() == 25


def test_semantic_label_map_values_order_and_ignore():
    ds = Dataset(categories=["a", "b"])
    rec = ImageRecord(id="x", width=10, height=10, instances=[
        Instance(category=0, bbox=(0, 0, 9, 9)),                      # whole image: a -> 1
        Instance(category=1, bbox=(2, 2, 5, 5), polygons=[[2, 2, 5, 2, 5, 5, 2, 5]]),  # b -> 2, over a
        Instance(category=-1, bbox=(7, 7, 8, 8), ignore=True),         # ignore -> 255
    ])
    lm = raster.semantic_label_map(rec, ds)
    assert lm.dtype == np.uint8 and lm.shape == (10, 10)
    assert lm[0, 0] == 1 and lm[3, 3] == 2 and lm[7, 7] == 255 and lm[8, 8] == 255
    assert set(np.unique(lm)) == {1, 2, 255}


def test_instance_mask_prefers_rle():
    m = np.zeros((8, 9), bool)
    m[1:3, 4:8] = True
    inst = Instance(category=0, bbox=(4, 1, 8, 3), polygons=[[0, 0, 1, 0, 1, 1]], mask=raster.mask_to_rle(m))
    assert np.array_equal(raster.instance_mask(inst, 8, 9), m)
    with pytest.raises(ValueError):
        raster.instance_mask(inst, 9, 9)


@pytest.mark.parametrize("seed", range(5))
def test_pixel_geometry_in_a_crop_equals_the_full_image(seed):
    rng = np.random.default_rng(seed)
    h, w = 120, 150
    for _ in range(20):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(1, 40)
        a = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 15)))
        xs = np.clip(cx + r * np.cos(a), 0, w)
        ys = np.clip(cy + r * np.sin(a), 0, h)
        poly = [float(v) for xy in zip(xs, ys) for v in xy]
        inst = Instance(category=0, bbox=(xs.min(), ys.min(), xs.max(), ys.max()), polygons=[poly])
        full = raster.polygons_mask([poly], h, w)
        rle = mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))
        area, bbox = raster.pixel_geometry(inst, h, w)
        assert area == float(mask_utils.area(rle))
        assert bbox == [float(v) for v in mask_utils.toBbox(rle)]


def test_polygon_area_shoelace():
    assert raster.polygon_area([0, 0, 4, 0, 4, 3]) == 6.0
    assert raster.polygon_area([0, 0, 0, 3, 4, 3, 4, 0]) == 12.0
    assert raster.polygon_area([0, 0, 1, 1]) == 0.0
