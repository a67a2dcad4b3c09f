"""Writers: every format written from the demo reads back as the same annotations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from zoo.pipeline.convert import convert_folder
from zoo.data.reading import read_dataset


@pytest.fixture(scope="module")
def demo(tiny_demo):
    return read_dataset(tiny_demo)


def _boxes(ds):
    return {r.id: sorted((ds.categories[i.category], *[round(v, 4) for v in i.bbox]) for i in r.instances if not i.ignore)
            for r in ds}


def test_demo_reads_with_zoo_yaml_vocabularies(demo):
    assert demo.categories == ["platelet", "rbc", "wbc"]
    assert demo.classes == ["anemia", "leukocytosis", "normal"]
    assert demo.keypoint_names == ["top", "right", "bottom", "left"]
    assert demo.skeleton == [(0, 1), (1, 2), (2, 3), (3, 0)] and demo.oks_sigmas
    assert all(len(r.labels) == 1 for r in demo)
    assert all(i.keypoints and all(v == 2 for _, _, v in i.keypoints) for r in demo for i in r.instances)


def test_coco_round_trip(tiny_demo, demo, tmp_path):
    convert_folder(tiny_demo, to="coco", out=tmp_path / "c")
    back = read_dataset(tmp_path / "c" / "annotations.json")
    assert back.format == "coco" and back.categories == demo.categories
    assert back.keypoint_names == demo.keypoint_names and back.skeleton == demo.skeleton
    assert _boxes(back) == _boxes(demo)
    a, b = demo.images[0].instances[0], back.images[0].instances[0]
    assert b.polygons == a.polygons and b.keypoints == a.keypoints
    assert back.images[0].load_rgb().shape == (back.images[0].height, back.images[0].width, 3)


@pytest.mark.parametrize("task", ["detect", "instance-seg", "keypoint"])
def test_yolo_round_trip(tiny_demo, demo, tmp_path, task):
    out = tmp_path / "y"
    convert_folder(tiny_demo, to="yolo", out=out, task=task)
    import yaml

    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "platelet", 1: "rbc", 2: "wbc"}
    if task == "keypoint":
        assert data["kpt_shape"] == [4, 3] and data["flip_idx"] == [0, 3, 2, 1]
    back = read_dataset(out)
    assert back.format == "yolo" and back.categories == demo.categories
    assert back.flip_idx == ([0, 3, 2, 1] if task == "keypoint" else None)  # data.yaml's, read back
    split_of = {i: s for s, ids in back.splits.items() for i in ids}  # no source split: zoo run's default
    assert set(back.splits) == {"train", "val"}
    for r in demo:
        br = back.image(next(i for i in (f"train/{r.id}", f"val/{r.id}") if i in split_of))
        assert len(br.instances) == len(r.instances)
        for a, b in zip(r.instances, br.instances):
            assert a.category == b.category
            tol = 1e-3 * max(r.width, r.height)
            if task == "instance-seg":  # the box of the polygon (circles: of the circle)
                x0, y0, x1, y1 = a.bbox  # a box-only instance is written as its 4 corners
                poly = a.polygons[0] if a.polygons else [x0, y0, x1, y0, x1, y1, x0, y1]
                xs, ys = poly[0::2], poly[1::2]
                assert b.bbox == pytest.approx((min(xs), min(ys), max(xs), max(ys)), abs=tol)
                assert b.polygons[0] == pytest.approx(poly, abs=tol)
            else:
                assert b.bbox == pytest.approx(a.bbox, abs=tol)


def test_yolo_classify_layout(tiny_demo, demo, tmp_path):
    out = tmp_path / "cls"
    convert_folder(tiny_demo, to="yolo", out=out, task="classify")
    back = read_dataset(out)  # train/<class>/ and val/<class>/: zoo run's default split
    assert back.format == "folders" and back.classes == demo.classes and set(back.splits) == {"train", "val"}
    assert sorted(back.classes[r.labels[0]] for r in back) == sorted(demo.classes[r.labels[0]] for r in demo)


def test_voc_round_trip_keeps_difficult(tiny_demo, demo, tmp_path):
    convert_folder(tiny_demo, to="voc", out=tmp_path / "v")
    back = read_dataset(tmp_path / "v")
    assert back.format == "voc" and _boxes(back) == _boxes(demo)
    assert (tmp_path / "v" / "ImageSets" / "Main" / "trainval.txt").read_text().split() == [r.id for r in demo]


def test_masks_are_the_rasteriser_output(tiny_demo, demo, tmp_path):
    from zoo.data.raster import semantic_label_map

    convert_folder(tiny_demo, to="masks", out=tmp_path / "m")
    assert (tmp_path / "m" / "class_names.txt").read_text().split() == ["_background_", *demo.categories]
    for r in demo.images[:3]:
        png = Image.open(tmp_path / "m" / "SegmentationClass" / f"{r.id}.png")
        assert png.mode == "P" and png.getpalette()[3:6] == [128, 0, 0]
        assert np.array_equal(np.asarray(png), semantic_label_map(r, demo))


def test_labelme_round_trip(tiny_demo, demo, tmp_path):
    convert_folder(tiny_demo, to="labelme", out=tmp_path / "l")
    (tmp_path / "l" / "zoo.yaml").write_text((tiny_demo / "zoo.yaml").read_text())
    back = read_dataset(tmp_path / "l")
    assert back.categories == demo.categories and back.classes == demo.classes
    for a, b in zip(demo, back):
        assert a.id == b.id and a.labels == b.labels
        for ia, ib in zip(a.instances, b.instances, strict=True):
            assert ia.category == ib.category and ia.keypoints == ib.keypoints
            assert ia.polygons == ib.polygons or (not ia.polygons and ib.bbox == pytest.approx(ia.bbox))


def test_labelme_mask_ignore_and_difficult_round_trip(real_fixtures, tmp_path):
    src = real_fixtures / "labelme" / "primitives"
    ds = read_dataset(src)
    convert_folder(src, to="labelme", out=tmp_path / "l")
    back = read_dataset(tmp_path / "l")
    from zoo.data.raster import rle_to_mask

    octa = [i for i in ds.images[0].instances if i.mask is not None][0]
    octb = [i for i in back.images[0].instances if i.mask is not None][0]
    assert np.array_equal(rle_to_mask(octa.mask), rle_to_mask(octb.mask))

    inst = real_fixtures / "labelme" / "instance_segmentation"
    convert_folder(inst, to="labelme", out=tmp_path / "i")
    back = read_dataset(tmp_path / "i")
    assert sum(i.ignore and i.category == -1 for r in back for i in r.instances) == 2


def test_predictions_to_labelme_read_back_as_annotations(tiny_demo, demo, tmp_path):
    """Ground truth fed through the prediction writer reads back as the same objects."""
    from zoo.pipeline.predict import write_prediction_files
    from zoo.predictions import ClassPrediction, Detection, InstancePredictions, SemanticPrediction
    from zoo.data.raster import instance_mask, mask_to_rle, semantic_label_map

    recs = demo.images[:3]
    preds = [InstancePredictions(r.id, [Detection(i.category, 0.9, i.bbox,
                                                  keypoints=[(x, y, 0.8) for x, y, _ in i.keypoints])
                                        for i in r.instances]) for r in recs]
    files = write_prediction_files(tmp_path / "p", demo.subset([r.id for r in recs]), preds, conf=0.0, copy_images=False)
    data = json.loads(files[0].read_text())
    assert data["imagePath"].endswith(recs[0].file.name) and data["shapes"][0]["score"] == 0.9
    (tmp_path / "p" / "zoo.yaml").write_text((tiny_demo / "zoo.yaml").read_text())
    back = read_dataset(tmp_path / "p")
    for r in recs:
        b = back.image(r.id)
        assert [i.category for i in b.instances] == [i.category for i in r.instances]
        assert np.allclose([i.bbox for i in b.instances], [i.bbox for i in r.instances])
        assert [i.keypoints for i in b.instances] == [i.keypoints for i in r.instances]
        assert b.file.resolve() == r.file.resolve()  # labelme opens the original image, nothing was copied

    # masks -> editable polygons covering the same pixels (to within the contour's edge)
    r = recs[0]
    big = max(r.instances, key=lambda i: i.box_area)
    m = instance_mask(big, r.height, r.width)
    pm = InstancePredictions(r.id, [Detection(big.category, 0.5, big.bbox, mask=mask_to_rle(m))])
    f = write_prediction_files(tmp_path / "q", demo.subset([r.id]), [pm], conf=0.0, copy_images=False)[0]
    shapes = json.loads(f.read_text())["shapes"]
    assert shapes[0]["shape_type"] == "polygon"
    back_m = instance_mask(read_dataset(f).images[0].instances[0], r.height, r.width)
    assert (back_m & m).sum() / (back_m | m).sum() > 0.85

    sem = SemanticPrediction(r.id, semantic_label_map(r, demo))
    f = write_prediction_files(tmp_path / "s", demo.subset([r.id]), [sem], conf=0.0, copy_images=False)[0]
    assert {s["label"] for s in json.loads(f.read_text())["shapes"]} <= set(demo.categories)
    f = write_prediction_files(tmp_path / "k", demo.subset([r.id]), [ClassPrediction(r.id, 2)], conf=0.0, copy_images=False)[0]
    assert json.loads(f.read_text())["flags"] == {"anemia": False, "leukocytosis": False, "normal": True}


def test_voc_devkit_with_imagesets(tmp_path, tiny_demo):
    convert_folder(tiny_demo, to="voc", out=tmp_path / "v")
    main = tmp_path / "v" / "ImageSets" / "Main"
    ids = (main / "trainval.txt").read_text().split()
    (main / "trainval.txt").unlink()
    (main / "train.txt").write_text("\n".join(ids[:8]) + "\n")
    (main / "val.txt").write_text("\n".join(ids[8:]) + "\n")
    ds = read_dataset(tmp_path / "v")
    assert ds.splits == {"train": ids[:8], "val": ids[8:]}
    # a devkit below VOCdevkit/VOC2007 is found too, and a Windows <path> resolves by name
    import shutil

    dk = tmp_path / "VOCdevkit" / "VOC2007"
    shutil.copytree(tmp_path / "v", dk)
    x = dk / "Annotations" / f"{ids[0]}.xml"
    x.write_text(x.read_text().replace("<folder>", f"<path>C:\\Users\\me\\{ids[0]}.jpg</path><folder>"))
    ds2 = read_dataset(tmp_path / "VOCdevkit")
    assert ds2.format == "voc" and ds2.image(ids[0]).file == dk / "JPEGImages" / f"{ids[0]}.jpg"


def test_labelme_schemas_old_and_new(tmp_path):
    """pre-3.x (no shape_type, no size), 3.x colours, X-AnyLabeling extras, 4-point
    rectangle in any corner order, imagePath with ../ and Windows form, EXIF rotation."""
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    im = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: the oriented image is 20 wide, 40 high
    im.save(img_dir / "rot.jpg", exif=exif)
    Image.new("RGB", (30, 30)).save(img_dir / "b.png")
    ann = tmp_path / "ann"
    ann.mkdir()
    old = {"imagePath": "..\\images\\rot.jpg", "imageData": None, "lineColor": [0, 255, 0, 128],
           "fillColor": [255, 0, 0, 128], "flags": {},
           "shapes": [{"label": "cell", "points": [[1, 1], [10, 2], [5, 30]], "line_color": None, "fill_color": None}]}
    (ann / "rot.json").write_text(json.dumps(old))
    new = {"version": "2.4.0", "flags": {}, "imagePath": "C:\\data\\b.png", "imageData": None,
           "imageHeight": 30, "imageWidth": 30,
           "shapes": [{"label": "cell", "score": 0.5, "points": [[20, 25], [5, 25], [5, 3], [20, 3]],
                       "group_id": None, "shape_type": "rectangle", "attributes": {}, "kie_linking": [],
                       "difficult": True}]}
    (ann / "b.json").write_text(json.dumps(new))
    (ann / "b.png").write_bytes((img_dir / "b.png").read_bytes())  # Windows path: found by name beside
    ds = read_dataset(ann)
    rot = ds.image("rot")
    assert (rot.width, rot.height) == (20, 40)  # EXIF orientation applied to the size
    assert rot.file == ann / ".." / "images" / "rot.jpg"
    assert rot.load_rgb().shape == (40, 20, 3)
    assert rot.instances[0].polygons == [[1.0, 1.0, 10.0, 2.0, 5.0, 30.0]]
    b = ds.image("b")
    assert b.instances[0].bbox == (5.0, 3.0, 20.0, 25.0) and b.instances[0].ignore  # difficult


def test_prediction_for_embedded_pixels_embeds_them(real_fixtures, tmp_path):
    import shutil

    from zoo.adapters.labelme_out import prediction_to_labelme
    from zoo.predictions import Detection, InstancePredictions

    shutil.copy(real_fixtures / "labelme" / "tutorial" / "apc2016_obj3.json", tmp_path)
    ds = read_dataset(tmp_path)
    r = ds.images[0]
    pred = InstancePredictions(r.id, [Detection(0, 0.7, (10.0, 20.0, 30.0, 40.0))])
    f = prediction_to_labelme(pred, ds.meta(), r, tmp_path / "out" / "p.json")
    back = read_dataset(f)
    assert back.images[0].load_rgb().shape == (907, 1210, 3) and back.images[0].instances[0].bbox == (10, 20, 30, 40)
