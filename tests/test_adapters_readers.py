"""Readers beyond labelme: COCO (crowd RLE, keypoints, split files), category order rules,
format detection, and zoo check."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from zoo.pipeline.convert import check_folder
from zoo.errors import ZooError
from zoo.data.reading import detect_format, read_dataset


SQUARE = [[2, 2], [12, 2], [12, 12], [2, 12]]


def _poly(label, pts):
    return {"label": label, "points": pts, "shape_type": "polygon", "group_id": None, "flags": {}}


def _labelme(folder, stem, shapes):
    Image.new("RGB", (40, 30)).save(folder / f"{stem}.png")
    data = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": f"{stem}.png",
            "imageData": None, "imageHeight": 30, "imageWidth": 40}
    (folder / f"{stem}.json").write_text(json.dumps(data))


def _coco_folder(tmp_path, name="instances_train.json", crowd_counts=None):
    (tmp_path / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 10)).save(tmp_path / "images" / "a.jpg")
    data = {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 20, "height": 10}],
        "categories": [{"id": 5, "name": "zebra", "keypoints": ["head", "tail"], "skeleton": [[1, 2]]},
                       {"id": 2, "name": "ant", "keypoints": ["head", "tail"], "skeleton": [[1, 2]]}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 5, "bbox": [1, 1, 5, 4], "area": 20, "iscrowd": 0,
             "segmentation": [[1, 1, 6, 1, 6, 5, 1, 5]], "keypoints": [2, 2, 2, 0, 0, 0], "num_keypoints": 1},
            {"id": 2, "image_id": 7, "category_id": 2, "bbox": [10, 2, 3, 3], "area": 9, "iscrowd": 1,
             "segmentation": {"size": [10, 20], "counts": crowd_counts or [22, 3, 7, 3, 7, 3, 155]}},
        ],
    }
    (tmp_path / name).write_text(json.dumps(data))
    return tmp_path


def test_coco_reader_categories_by_id_keypoints_and_crowd(tmp_path):
    src = _coco_folder(tmp_path)
    assert detect_format(src) == "coco"
    ds = read_dataset(src)
    assert ds.categories == ["ant", "zebra"]  # COCO's own order: by category id
    assert ds.keypoint_names == ["head", "tail"] and ds.skeleton == [(0, 1)]
    zebra, crowd = ds.images[0].instances
    assert zebra.category == 1 and zebra.bbox == (1.0, 1.0, 6.0, 5.0)
    assert zebra.keypoints == [(2.0, 2.0, 2), (0.0, 0.0, 0)]
    assert crowd.ignore and crowd.category == 0 and crowd.mask is not None
    from zoo.data.raster import rle_to_mask

    m = rle_to_mask(crowd.mask)
    assert m.sum() == 9 and m[2:5, 2].all()
    assert ds.splits == {}  # a single train file is not a split


def test_coco_split_files_become_splits(tmp_path):
    _coco_folder(tmp_path, "instances_train.json")
    data = json.loads((tmp_path / "instances_train.json").read_text())
    Image.new("RGB", (20, 10)).save(tmp_path / "images" / "b.jpg")
    data["images"] = [{"id": 1, "file_name": "b.jpg", "width": 20, "height": 10}]
    data["annotations"] = []
    (tmp_path / "instances_val.json").write_text(json.dumps(data))
    ds = read_dataset(tmp_path)
    assert ds.splits == {"train": ["train/a"], "val": ["val/b"]}


def test_labels_file_orders_coco_categories(tmp_path):
    src = _coco_folder(tmp_path / "d")
    lab = tmp_path / "labels.txt"
    lab.write_text("_background_\nzebra\nant\n")
    assert read_dataset(src, labels=lab).categories == ["zebra", "ant"]


def test_order_is_sorted_not_first_appearance(tmp_path):
    _labelme(tmp_path, "a", [_poly("zebra", SQUARE), _poly("ant", SQUARE), _poly("moth", SQUARE)])
    ds = read_dataset(tmp_path)
    assert ds.categories == ["ant", "moth", "zebra"]
    (tmp_path / "zoo.yaml").write_text("categories: [zebra, moth, ant]\n")
    assert read_dataset(tmp_path).categories == ["zebra", "moth", "ant"]


def test_keypoint_names_coco_order_when_subset(tmp_path):
    rect = {"label": "person", "points": [[1, 1], [30, 25]], "shape_type": "rectangle", "group_id": 3}
    pts = [{"label": n, "points": [[5 + i, 5]], "shape_type": "point", "group_id": 3}
           for i, n in enumerate(["right_ankle", "nose", "left_eye"])]
    _labelme(tmp_path, "a", [rect, *pts])
    ds = read_dataset(tmp_path)
    assert len(ds.keypoint_names) == 17 and ds.keypoint_names[0] == "nose"
    kp = ds.images[0].instances[0].keypoints
    assert kp[0] == (6, 5, 2) and kp[1] == (7, 5, 2) and kp[16] == (5, 5, 2) and kp[2] == (0.0, 0.0, 0)
    assert ds.oks_sigmas and len(ds.oks_sigmas) == 17
    # other names: sorted; a point without group_id joins the polygon that contains it
    poly = {"label": "fish", "points": [[0, 0], [20, 0], [20, 20], [0, 20]], "shape_type": "polygon"}
    fin = {"label": "fin", "points": [[3, 3]], "shape_type": "point"}
    eye = {"label": "eye", "points": [[4, 4]], "shape_type": "point"}
    _labelme(tmp_path, "a", [poly, fin, eye])
    ds = read_dataset(tmp_path)
    assert ds.keypoint_names == ["eye", "fin"] and ds.images[0].instances[0].keypoints == [(4, 4, 2), (3, 3, 2)]


def test_check_folder_and_task(tiny_demo, real_fixtures):
    ds = check_folder(tiny_demo, task="keypoint")
    assert len(ds) == 12
    with pytest.raises(ZooError):
        check_folder(real_fixtures / "labelme" / "classification", task="detect")


def test_zoo_check_cli_prints_the_table(real_fixtures):
    r = subprocess.run([sys.executable, "-m", "zoo", "check", str(real_fixtures / "labelme" / "instance_segmentation")],
                       capture_output=True, text=True, env={"COLUMNS": "200", "PATH": ""})
    assert r.returncode == 1, r.stderr  # findings: a linter's status
    assert "person" in r.stdout and "ignored regions" in r.stdout
    assert "clipped to its edges" in r.stdout  # every warning listed


def test_convert_rejects_unknown_format_and_task(tiny_demo, tmp_path):
    from zoo.pipeline.convert import convert_folder

    with pytest.raises(ZooError, match="unknown output format 'coc'"):
        convert_folder(tiny_demo, to="coc", out=tmp_path / "o")
    with pytest.raises(ZooError):
        convert_folder(tiny_demo, to="yolo", task="segmentt", out=tmp_path / "o2")
    assert np.isfinite(1.0)


def test_roboflow_style_exports(tmp_path):
    """train/ valid/ folders: YOLO with data.yaml, COCO with _annotations.coco.json each."""
    y = tmp_path / "yolo"
    for split in ("train", "valid"):
        (y / split / "images").mkdir(parents=True)
        (y / split / "labels").mkdir(parents=True)
        Image.new("RGB", (20, 10)).save(y / split / "images" / "x.jpg")
        (y / split / "labels" / "x.txt").write_text("1 0.5 0.5 0.5 0.4\n")
    (y / "data.yaml").write_text("nc: 2\nnames: ['cell', 'dot']\ntrain: train/images\nval: valid/images\n")
    ds = read_dataset(y)
    assert ds.format == "yolo" and ds.categories == ["cell", "dot"]
    assert sorted(ds.splits) == ["train", "val"] and len(ds) == 2
    assert ds.image("train/images/x").instances[0].bbox == pytest.approx((5.0, 3.0, 15.0, 7.0))

    c = tmp_path / "coco"
    for split in ("train", "valid"):
        _coco_folder(c / split, "_annotations.coco.json")
        (c / split / "images" / "a.jpg").rename(c / split / "a.jpg")
    ds = read_dataset(c)
    assert ds.format == "coco" and sorted(r.id for r in ds) == ["train/a", "val/a"]
    assert ds.splits == {"train": ["train/a"], "val": ["val/a"]}


def test_images_in_a_sibling_folder_are_found(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "ann").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "images" / "p1.png")
    data = {"shapes": [_poly("a", SQUARE)], "imagePath": "/home/someone/else/p1.png", "imageData": None,
            "imageHeight": 30, "imageWidth": 40}
    (tmp_path / "ann" / "p1.json").write_text(json.dumps(data))
    (tmp_path / "ann" / "p1.xml").write_text(
        "<annotation><filename>p1.png</filename><size><width>40</width><height>30</height></size>"
        "<object><name>a</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
        "</annotation>")
    ds = read_dataset(tmp_path, "labelme")
    assert ds.images[0].file == tmp_path / "images" / "p1.png"
    ds = read_dataset(tmp_path, "voc")
    assert ds.images[0].file == tmp_path / "images" / "p1.png"


def test_xanylabeling_rotation_shape_is_a_polygon(tmp_path):
    rot = {"label": "ship", "points": [[2, 5], [10, 1], [14, 9], [6, 13]], "shape_type": "rotation",
           "direction": 0.46}
    _labelme(tmp_path, "a", [rot])
    inst = read_dataset(tmp_path).images[0].instances[0]
    assert inst.polygons == [[2, 5, 10, 1, 14, 9, 6, 13]] and inst.bbox == (2, 1, 14, 13)


def test_detection_prefers_voc_xml_over_yolo_txt_beside_it(tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "a.jpg")
    (tmp_path / "classes.txt").write_text("dog\n")
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><object><name>dog</name><difficult>1</difficult>"
        "<bndbox><xmin>1.5</xmin><ymin>2</ymin><xmax>9</xmax><ymax>9.25</ymax></bndbox></object></annotation>")
    assert detect_format(tmp_path) == "voc"
    ds = read_dataset(tmp_path)
    inst = ds.images[0].instances[0]
    assert inst.ignore and inst.bbox == (1.5, 2.0, 9.0, 9.25) and (ds.images[0].width, ds.images[0].height) == (40, 30)
    (tmp_path / "a.xml").unlink()
    assert detect_format(tmp_path) == "yolo"
