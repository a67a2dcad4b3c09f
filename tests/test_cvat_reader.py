"""CVAT exports as CVAT writes them: CVAT for images 1.1 XML (every shape kind, its mask RLE,
groups, z_order), and the same annotation exported as XML and as Segmentation mask 1.1."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zoo.data.raster import rle_to_mask, semantic_label_map
from zoo.data.reading import detect_format, read_dataset
from zoo.errors import DataError

W, H = 60, 40


def _cvat_rle(mask: np.ndarray) -> str:
    """CVAT's mask RLE of a box crop: runs of 0, 1, 0, ... row by row, starting with 0."""
    flat = mask.astype(np.uint8).ravel()
    runs, value, n = [], 0, 0
    for v in flat:
        if v == value:
            n += 1
        else:
            runs.append(n)
            value, n = v, 1
    runs.append(n)
    return ", ".join(map(str, runs))


def _xml(images: list[str]) -> str:
    return ('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n'
            '  <meta><task><name>t</name></task></meta>\n' + "\n".join(images) + "\n</annotations>\n")


LESION = np.array([[0, 1, 1, 0, 0], [1, 1, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=bool)


def _every_shape_image(name="a.png") -> str:
    return f'''  <image id="0" name="{name}" width="{W}" height="{H}">
    <box label="cell" source="manual" occluded="1" xtl="2" ytl="3" xbr="12" ybr="10" z_order="0">
      <attribute name="stained">true</attribute>
    </box>
    <polygon label="cell" occluded="0" points="20,5;30,5;30,15" z_order="0" group_id="5"/>
    <polygon label="cell" occluded="0" points="32,5;38,5;38,10" z_order="0" group_id="5"/>
    <points label="nucleus" occluded="0" points="25,8" z_order="0" group_id="5"/>
    <polyline label="vessel" occluded="0" points="1,30;20,30" z_order="0"/>
    <ellipse label="cyst" occluded="0" cx="45" cy="30" rx="6" ry="4" z_order="0"/>
    <mask label="lesion" source="manual" occluded="0" rle="{_cvat_rle(LESION)}" left="40" top="2" width="5" height="3" z_order="3"/>
    <box label="cell" occluded="0" xtl="40" ytl="20" xbr="50" ybr="24" rotation="90" z_order="1"/>
    <polygon label="" points="1,1;3,1;3,3" z_order="0"/>
    <tag label="abnormal" source="manual"/>
  </image>'''


def test_every_cvat_shape_kind(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (W, H)).save(tmp_path / "images" / "a.png")
    (tmp_path / "annotations.xml").write_text(_xml([_every_shape_image()]))
    assert detect_format(tmp_path) == "cvat"
    ds = read_dataset(tmp_path)
    rec = ds.images[0]
    assert rec.id == "a" and ds.classes == ["abnormal"] and rec.labels == [0]
    by_label = {}
    for inst in rec.instances:
        by_label.setdefault(ds.categories[inst.category], []).append(inst)
    assert sorted(by_label) == ["cell", "cyst", "lesion", "vessel"]
    box, group, turned = by_label["cell"]
    assert box.bbox == (2.0, 3.0, 12.0, 10.0) and not box.polygons
    assert group.polygons == [[20, 5, 30, 5, 30, 15], [32, 5, 38, 5, 38, 10]]  # group_id: one object
    assert group.keypoints == [(25.0, 8.0, 2)] and ds.keypoint_names == ["nucleus"]
    np.testing.assert_allclose(turned.bbox, (43.0, 17.0, 47.0, 27.0), atol=1e-9)  # 10x4 turned 90 degrees
    (lesion,) = by_label["lesion"]
    expected = np.zeros((H, W), bool)
    expected[2:5, 40:45] = LESION
    np.testing.assert_array_equal(rle_to_mask(lesion.mask), expected)
    assert rec.instances[-1] is lesion  # z_order 3: painted last
    (cyst,) = by_label["cyst"]
    assert cyst.bbox[0] == pytest.approx(39, abs=0.01) and cyst.bbox[3] == pytest.approx(34, abs=0.01)
    assert any("no label" in p.reason for p in ds.warnings)


def test_cvat_project_export_of_datumaro(real_fixtures):
    root = real_fixtures / "datumaro" / "cvat_dataset" / "for_images"
    task = read_dataset(root / "export_task")
    assert task.format == "cvat" and sorted(r.id for r in task.images) == ["img0", "img1"]
    assert task.splits == {"train": ["img0", "img1"]}
    (box,) = task.image("img0").instances  # the polyline has label "": skipped, with a warning
    assert task.categories[box.category] == "label1" and box.bbox == (0.0, 2.0, 4.0, 4.0)
    assert sum("no label" in p.reason for p in task.warnings) == 2  # the polyline and the polygon
    project = read_dataset(root / "export_project")
    assert len(project.images) == 6
    assert {k: sorted(v) for k, v in project.splits.items()} == {
        s: [f"{n}/img0", f"{n}/img1"] for s, n in (("test", "Test"), ("train", "Train"), ("val", "Validation"))}
    for subset in ("Test", "Train", "Validation"):
        img0, img1 = project.image(f"{subset}/img0"), project.image(f"{subset}/img1")
        assert sorted(project.categories[i.category] for i in img0.instances) == ["label1", "label2"]
        assert [project.categories[i.category] for i in img1.instances] == ["label1"]
        assert img0.file.parent.name == subset


def test_same_annotation_as_cvat_xml_coco_and_segmentation_mask_reads_the_same(tmp_path):
    lm = np.zeros((H, W), np.uint8)
    lm[5:15, 4:20] = 1
    lm[20:30, 30:50] = 2
    names, colours = ["tumour", "vessel"], [(250, 50, 83), (51, 221, 255)]
    # CVAT for images 1.1: one mask shape per class
    xml_dir = tmp_path / "xml"
    (xml_dir / "images").mkdir(parents=True)
    Image.new("RGB", (W, H), (9, 9, 9)).save(xml_dir / "images" / "scan.png")
    shapes = []
    for v, name in enumerate(names, start=1):
        ys, xs = np.nonzero(lm == v)
        crop = (lm == v)[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        shapes.append(f'<mask label="{name}" rle="{_cvat_rle(crop)}" left="{xs.min()}" top="{ys.min()}" '
                      f'width="{crop.shape[1]}" height="{crop.shape[0]}" z_order="0"/>')
    (xml_dir / "annotations.xml").write_text(_xml([f'<image id="0" name="scan.png" width="{W}" height="{H}">'
                                                   + "".join(shapes) + "</image>"]))
    # Segmentation mask 1.1: colour PNGs + labelmap.txt, images in JPEGImages/
    seg = tmp_path / "seg"
    (seg / "JPEGImages").mkdir(parents=True)
    (seg / "SegmentationClass").mkdir()
    Image.new("RGB", (W, H), (9, 9, 9)).save(seg / "JPEGImages" / "scan.png")
    rgb = np.zeros((H, W, 3), np.uint8)
    for v, c in enumerate(colours, start=1):
        rgb[lm == v] = c
    Image.fromarray(rgb).save(seg / "SegmentationClass" / "scan.png")
    (seg / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                      + "".join(f"{n}:{','.join(map(str, c))}::\n" for n, c in zip(names, colours)))
    # COCO 1.0: the masks as RLE
    import json

    from zoo.data.raster import mask_to_rle

    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    (coco / "images").mkdir()
    Image.new("RGB", (W, H), (9, 9, 9)).save(coco / "images" / "scan.png")
    anns = [{"id": v, "image_id": 1, "category_id": v, "segmentation": mask_to_rle(lm == v), "iscrowd": 0,
             "area": int((lm == v).sum()), "bbox": [0, 0, 1, 1]} for v in (1, 2)]
    (coco / "annotations" / "instances_default.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "scan.png", "width": W, "height": H}], "annotations": anns,
        "categories": [{"id": v, "name": n} for v, n in enumerate(names, start=1)]}))
    read = [read_dataset(d) for d in (xml_dir, seg, coco)]
    assert [d.format for d in read] == ["cvat", "masks", "coco"]
    for d in read:
        assert d.categories == names
        np.testing.assert_array_equal(semantic_label_map(d.images[0], d), lm)


def test_cvat_xml_bad_input(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (W, H)).save(tmp_path / "images" / "a.png")
    (tmp_path / "annotations.xml").write_text(_xml(['<image id="0" name="a.png" width="60" height="40">'
                                                    '<mask label="x" rle="1, 2" left="0" top="0" width="5" height="5"/>'
                                                    '<box label="x" xtl="nan" ytl="0" xbr="3" ybr="3"/>'
                                                    '<box label="y" xtl="1" ytl="1" xbr="3" ybr="3"/></image>']))
    ds = read_dataset(tmp_path)
    assert [ds.categories[i.category] for i in ds.images[0].instances] == ["y"]
    reasons = " ".join(p.reason for p in ds.warnings)
    assert "does not cover its 5x5 box" in reasons and "non-numeric" in reasons
    (tmp_path / "annotations.xml").write_text("<annotations><version>1.1</version><image")
    with pytest.raises(DataError, match="annotations.xml: is not well-formed XML"):
        read_dataset(tmp_path, "cvat")


def _cvat_coco(root, names_on_disk: dict[str, str], folder_in_json="task_17_scans"):
    """CVAT's COCO export: annotations/instances_default.json naming images inside CVAT's
    own folder; the user's images elsewhere, some with upper-case suffixes."""
    import json

    (root / "annotations").mkdir(parents=True)
    images, anns = [], []
    for k, (in_json, on_disk) in enumerate(names_on_disk.items(), start=1):
        if on_disk:
            (root / "images").mkdir(exist_ok=True)
            Image.new("RGB", (W, H), (k, k, k)).save(root / "images" / on_disk, format="PNG")
        images.append({"id": k, "file_name": f"{folder_in_json}/{in_json}", "width": W, "height": H})
        anns.append({"id": k, "image_id": k, "category_id": 1, "bbox": [2, 3, 10, 7], "area": 70, "iscrowd": 0,
                     "segmentation": [[2, 3, 12, 3, 12, 10, 2, 10]]})
    (root / "annotations" / "instances_default.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "cell", "supercategory": ""}]}))


def test_cvat_coco_export_finds_images_by_base_name_any_case(tmp_path):
    _cvat_coco(tmp_path, {"a.jpg": "a.JPG", "b.jpg": "b.jpg", "c.png": "C.PNG"})
    ds = read_dataset(tmp_path)
    assert ds.format == "coco" and all(r.has_pixels for r in ds.images)
    assert sorted(r.file.name for r in ds.images) == ["C.PNG", "a.JPG", "b.jpg"]
    (rule,) = [p.reason for p in ds.warnings if "found by file name" in p.reason]
    assert rule.startswith("2 image(s) found by file name below")  # b.jpg is in images/ as named


def test_several_files_of_one_name_are_an_error_naming_them(tmp_path):
    _cvat_coco(tmp_path, {"a.jpg": None})
    for sub, name in (("new", "a.jpg"), ("old", "A.JPG")):
        (tmp_path / "images" / sub).mkdir(parents=True)
        Image.new("RGB", (W, H)).save(tmp_path / "images" / sub / name, format="PNG")
    with pytest.raises(DataError, match=r"image 'a.jpg' is not where the file says, and 2 files of that name.*--images"):
        read_dataset(tmp_path)


def test_missing_images_are_an_error_in_check_as_run_refuses_them_and_images_dir_fixes_it(tmp_path):
    import json
    import subprocess
    import sys

    _cvat_coco(tmp_path / "export", {"a.jpg": None, "b.jpg": None})
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in ("a.jpg", "B.JPG"):
        Image.new("RGB", (W, H), (ord(n[0]), 0, 0)).save(photos / n, format="PNG")
    check = [sys.executable, "-m", "zoo", "check", str(tmp_path / "export"), "--format", "json"]
    r = subprocess.run(check, capture_output=True, text=True)
    report = json.loads(r.stdout)
    missing = [f for f in report["findings"] if f["check"] == "missing-image"]
    assert r.returncode == 1 and len(missing) == 2 and {f["level"] for f in missing} == {"error"}
    run = subprocess.run([sys.executable, "-m", "zoo", "run", "--task", "detect", "--backend", "faster-rcnn",
                          "--data", str(tmp_path / "export"), "--out", str(tmp_path / "runs")], capture_output=True, text=True)
    assert run.returncode == 2 and "have no image file" in run.stderr  # the same fact refused by run
    r = subprocess.run(check + ["--images", str(photos)], capture_output=True, text=True)
    assert not [f for f in json.loads(r.stdout)["findings"] if f["check"] == "missing-image"], r.stdout
    ds = read_dataset(tmp_path / "export", images=photos)
    assert sorted(r.file.name for r in ds.images) == ["B.JPG", "a.jpg"]


def test_duplicate_images_name_the_image_files(tmp_path):
    from zoo.data.lint import lint_folder

    _cvat_coco(tmp_path, {"a.png": "a.png", "b.png": "b.png"})
    Image.new("RGB", (W, H), (1, 1, 1)).save(tmp_path / "images" / "b.png")  # b: the same pixels as a
    (dup,) = [f for f in lint_folder(tmp_path).findings if f.check == "duplicate-image"]
    assert dup.file.endswith("b.png") and dup.message.startswith("same pixels as ") and "a.png" in dup.message


def test_segmentation_mask_export_without_images_reads_with_images_dir(tmp_path):
    from zoo.cli import main

    seg, photos = tmp_path / "seg", tmp_path / "photos"
    (seg / "SegmentationClass").mkdir(parents=True)
    photos.mkdir()
    lm = np.zeros((H, W), np.uint8)
    lm[4:9, 5:30] = 1
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[lm == 1] = (250, 50, 83)
    Image.fromarray(rgb).save(seg / "SegmentationClass" / "scan_1.png")
    (seg / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\ntumour:250,50,83::\n")
    Image.new("RGB", (W, H)).save(photos / "Scan_1.JPG", format="PNG")
    assert detect_format(seg) == "masks"
    with pytest.raises(DataError, match="--images DIR"):
        read_dataset(seg)
    ds = read_dataset(seg, images=photos)
    np.testing.assert_array_equal(semantic_label_map(ds.images[0], ds), lm)
    main(["convert", str(seg), "--images", str(photos), "--to", "coco", "--out", str(tmp_path / "coco")])
    assert (tmp_path / "coco" / "images" / "scan_1.png").is_file() or any((tmp_path / "coco" / "images").iterdir())


@pytest.mark.parametrize("with_images", [True, False])
def test_cvat_yolo_export(tmp_path, with_images):
    root, photos = tmp_path / "yolo", tmp_path / "photos"
    (root / "obj_train_data").mkdir(parents=True)
    photos.mkdir()
    (root / "obj.data").write_text("classes = 2\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n")
    (root / "obj.names").write_text("cell\nvessel\n")
    (root / "train.txt").write_text("data/obj_train_data/a.jpg\ndata/obj_train_data/b.jpg\n")
    for n in ("a", "b"):
        Image.new("RGB", (W, H)).save((root / "obj_train_data" if with_images else photos) / f"{n}.jpg")
    (root / "obj_train_data" / "a.txt").write_text("0 0.5 0.5 0.2 0.25\n1 0.25 0.25 0.1 0.1\n")
    (root / "obj_train_data" / "b.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    if not with_images:
        with pytest.raises(DataError, match="holds no images; its label files need them: pass --images DIR"):
            read_dataset(root)
    ds = read_dataset(root, images=None if with_images else photos)
    assert ds.format == "yolo" and ds.categories == ["cell", "vessel"]
    boxes = {r.id.split("/")[-1]: [(ds.categories[i.category], i.bbox) for i in r.instances] for r in ds.images}
    assert boxes == {"a": [("cell", (24.0, 15.0, 36.0, 25.0)), ("vessel", (12.0, 8.0, 18.0, 12.0))],
                     "b": [("vessel", (15.0, 10.0, 45.0, 30.0))]}


def test_segmentation_mask_export_objects_give_instances(tmp_path):
    seg = tmp_path / "seg"
    for d in ("JPEGImages", "SegmentationClass", "SegmentationObject"):
        (seg / d).mkdir(parents=True)
    Image.new("RGB", (W, H)).save(seg / "JPEGImages" / "scan.png")
    objects = [("tumour", (slice(2, 8), slice(2, 10))), ("tumour", (slice(2, 8), slice(12, 20))),
               ("vessel", (slice(20, 30), slice(5, 40)))]
    colours = {"tumour": (250, 50, 83), "vessel": (51, 221, 255)}
    cls = np.zeros((H, W, 3), np.uint8)
    obj = np.zeros((H, W, 3), np.uint8)
    for k, (name, where) in enumerate(objects, start=1):
        cls[where] = colours[name]
        obj[where] = (10 * k, 200, 7 * k)  # CVAT gives each object a colour of its own
    obj[0, :] = (224, 224, 192)  # VOC's border colour: no object
    Image.fromarray(cls).save(seg / "SegmentationClass" / "scan.png")
    Image.fromarray(obj).save(seg / "SegmentationObject" / "scan.png")
    (seg / "labelmap.txt").write_text("background:0,0,0::\ntumour:250,50,83::\nvessel:51,221,255::\n")
    ds = read_dataset(seg)
    got = sorted((ds.categories[i.category], int(rle_to_mask(i.mask).sum())) for i in ds.images[0].instances)
    assert got == [("tumour", 48), ("tumour", 48), ("vessel", 350)]


def test_datumaro_voc_segmentation_object_is_one_bicycle(real_fixtures):
    ds = read_dataset(real_fixtures / "datumaro" / "voc_dataset" / "voc_dataset1", "masks")
    (inst,) = ds.image("2007_000001").instances
    assert ds.categories[inst.category] == "bicycle" and rle_to_mask(inst.mask).all()


def test_yolo_label_files_match_their_image_up_to_case(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (W, H)).save(tmp_path / "images" / "IMG_1.JPG", format="PNG")
    (tmp_path / "labels" / "img_1.txt").write_text("0 0.5 0.5 0.2 0.25\n")
    (tmp_path / "classes.txt").write_text("cell\n")
    (box,) = read_dataset(tmp_path, "yolo").images[0].instances
    assert box.bbox == (24.0, 15.0, 36.0, 25.0)
    (tmp_path / "labels" / "Img_1.txt").write_text("0 0.5 0.5 0.2 0.25\n")
    with pytest.raises(DataError, match="IMG_1.JPG: has several label files up to case"):
        read_dataset(tmp_path, "yolo")
