"""The bad-input policy of adapters/POLICY.md, one test per row."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from zoo.errors import DataError, ZooError
from zoo.data.reading import read_dataset

W, H = 40, 30


def _img(path: Path, size=(W, H)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 30, 60)).save(path)
    return path


def _labelme(folder: Path, stem: str, shapes, *, image=True, **extra) -> Path:
    if image:
        _img(folder / f"{stem}.png")
    data = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": f"{stem}.png",
            "imageData": None, "imageHeight": H, "imageWidth": W, **extra}
    f = folder / f"{stem}.json"
    f.write_text(json.dumps(data))
    return f


def _poly(label, pts, **kw):
    return {"label": label, "points": pts, "shape_type": "polygon", "group_id": None, "flags": {}, **kw}


SQUARE = [[2, 2], [12, 2], [12, 12], [2, 12]]


def _reasons(ds):
    return [w.reason for w in ds.warnings]


def test_malformed_json_is_fatal_and_names_the_file(tmp_path):
    _labelme(tmp_path, "ok", [_poly("a", SQUARE)])
    (tmp_path / "bad.json").write_text('{"shapes": [ {"label": "a", ')
    with pytest.raises(DataError) as e:
        read_dataset(tmp_path, "labelme")
    assert "bad.json" in str(e.value) and "not valid JSON" in str(e.value) and "line 1" in str(e.value)


def test_malformed_xml_is_fatal(tmp_path):
    _img(tmp_path / "a.jpg")
    (tmp_path / "a.xml").write_text("<annotation><filename>a.jpg</filename><object>")
    with pytest.raises(DataError, match=r"a\.xml: is not valid XML"):
        read_dataset(tmp_path, "voc")


def test_non_labelme_json_in_folder_is_skipped_with_warning(tmp_path):
    _labelme(tmp_path, "ok", [_poly("a", SQUARE)])
    (tmp_path / "coco.json").write_text(json.dumps({"images": [], "annotations": []}))
    ds = read_dataset(tmp_path, "labelme")
    assert len(ds) == 1 and any("not a labelme file" in r for r in _reasons(ds))


def test_missing_image_without_imagedata_is_skipped(tmp_path):
    _labelme(tmp_path, "ok", [_poly("a", SQUARE)])
    _labelme(tmp_path, "gone", [_poly("a", SQUARE)], image=False)
    ds = read_dataset(tmp_path, "labelme")
    assert [r.id for r in ds] == ["ok"]
    assert any("image not found" in w.reason and "gone.json" in w.source.file for w in ds.warnings)


def test_only_missing_images_is_fatal(tmp_path):
    _labelme(tmp_path, "gone", [_poly("a", SQUARE)], image=False)
    with pytest.raises(DataError, match="no labelme JSON file zoo could read"):
        read_dataset(tmp_path, "labelme")


def test_polygon_of_two_points_is_skipped(tmp_path):
    _labelme(tmp_path, "a", [_poly("a", [[1, 1], [5, 5]]), _poly("a", SQUARE)])
    ds = read_dataset(tmp_path)
    assert len(ds.images[0].instances) == 1
    assert ds.warnings[0].source.shape == 0 and "needs 3" in ds.warnings[0].reason


def test_zero_area_rectangle_is_skipped(tmp_path):
    rect = {"label": "a", "points": [[5, 5], [5, 9]], "shape_type": "rectangle", "group_id": None}
    _labelme(tmp_path, "a", [rect])
    ds = read_dataset(tmp_path)
    assert ds.images[0].instances == [] and "zero area" in ds.warnings[0].reason


def test_zero_area_voc_box_is_skipped(tmp_path):
    _img(tmp_path / "a.jpg")
    (tmp_path / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>40</width><height>30</height></size>"
        "<object><name>cell</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>5</xmax><ymax>20</ymax></bndbox></object>"
        "<object><name>cell</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>9</xmax><ymax>20</ymax></bndbox></object>"
        "</annotation>")
    ds = read_dataset(tmp_path)
    assert ds.format == "voc" and len(ds.images[0].instances) == 1 and "zero area" in ds.warnings[0].reason


def test_points_outside_the_image_are_clipped_with_warning(tmp_path):
    _labelme(tmp_path, "a", [_poly("a", [[-3, 2], [50, 2], [20, 40]])])
    ds = read_dataset(tmp_path)
    inst = ds.images[0].instances[0]
    assert inst.polygons == [[0.0, 2.0, 40.0, 2.0, 20.0, 30.0]]
    assert inst.bbox == (0.0, 2.0, 40.0, 30.0)
    assert "clipped" in ds.warnings[0].reason


def test_nan_coordinates_skip_the_shape(tmp_path):
    # labelme writes with Python's json, which emits NaN and Infinity
    _labelme(tmp_path, "a", [_poly("a", [[math.nan, 2], [12, 2], [12, 12]]),
                             _poly("a", [[math.inf, 2], [12, 2], [12, 12]]), _poly("a", SQUARE)])
    assert "NaN" in (tmp_path / "a.json").read_text()
    ds = read_dataset(tmp_path)
    assert len(ds.images[0].instances) == 1
    assert [w.source.shape for w in ds.warnings] == [0, 1] and "finite" in ds.warnings[0].reason


def test_yolo_nan_line_is_skipped(tmp_path):
    _img(tmp_path / "a.jpg")
    (tmp_path / "classes.txt").write_text("cell\n")
    (tmp_path / "a.txt").write_text("0 nan 0.5 0.1 0.1\n0 0.5 0.5 0.2 0.2\n")
    ds = read_dataset(tmp_path)
    assert len(ds.images[0].instances) == 1 and "NaN" in ds.warnings[0].reason


def test_unknown_shape_type_is_skipped(tmp_path):
    _labelme(tmp_path, "a", [{"label": "a", "points": SQUARE, "shape_type": "hexagon"}, _poly("a", SQUARE)])
    ds = read_dataset(tmp_path)
    assert len(ds.images[0].instances) == 1 and "unknown shape type 'hexagon'" in ds.warnings[0].reason


def test_labels_missing_from_labels_file_are_skipped_with_count(tmp_path):
    src = tmp_path / "src"
    _labelme(src, "a", [_poly("a", SQUARE), _poly("zebra", SQUARE), _poly("zebra", SQUARE)])
    lab = tmp_path / "labels.txt"
    lab.write_text("__ignore__\n_background_\nb\na\n")
    ds = read_dataset(src, labels=lab)
    assert ds.categories == ["b", "a"]
    assert [i.category for i in ds.images[0].instances] == [1]
    assert any("'zebra'" in r and "2 shape(s)" in r for r in _reasons(ds))


def test_duplicate_image_stems_read_the_first(tmp_path):
    _img(tmp_path / "a.jpg")
    _img(tmp_path / "a.png")
    (tmp_path / "classes.txt").write_text("cell\n")
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    ds = read_dataset(tmp_path, "yolo")
    assert [r.file.name for r in ds] == ["a.jpg"]
    assert any("same stem" in r for r in _reasons(ds))


def test_yolo_labels_without_images_warn(tmp_path):
    _img(tmp_path / "a.jpg")
    (tmp_path / "classes.txt").write_text("cell\n\n")
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "orphan.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    ds = read_dataset(tmp_path)
    assert ds.format == "yolo" and len(ds) == 1
    assert any("without an image" in w.reason and "orphan.txt" in w.source.file for w in ds.warnings)


def test_yolo_class_out_of_range(tmp_path):
    _img(tmp_path / "a.jpg")
    (tmp_path / "classes.txt").write_text("cell\n")
    (tmp_path / "a.txt").write_text("3 0.5 0.5 0.2 0.2\n")
    ds = read_dataset(tmp_path)
    assert ds.images[0].instances == [] and "not in 0..0" in ds.warnings[0].reason


def test_non_utf8_is_fatal_naming_the_byte(tmp_path):
    _labelme(tmp_path, "a", [_poly("a", SQUARE)])
    f = tmp_path / "a.json"
    f.write_bytes(f.read_bytes().replace(b'"a"', '"caf\u00e9"'.encode("latin-1")))
    with pytest.raises(DataError, match=r"not UTF-8 text \(byte 0xe9"):
        read_dataset(tmp_path)


def test_utf8_bom_and_utf16_are_read(tmp_path):
    _labelme(tmp_path, "a", [_poly("臉", SQUARE)])
    f = tmp_path / "a.json"
    f.write_bytes(f.read_text().encode("utf-16"))
    assert read_dataset(tmp_path, "labelme").categories == ["臉"]
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps(json.loads(f.read_bytes().decode("utf-16"))).encode())
    assert read_dataset(tmp_path, "labelme").categories == ["臉"]


@pytest.mark.parametrize("to", ["yolo", "masks", "voc", "labelme", "coco"])
def test_unsafe_label_names_never_leave_out(tmp_path, to):
    from zoo.pipeline.convert import convert_folder

    src = tmp_path / "src"
    _labelme(src, "a", [_poly("tv/monitor", SQUARE), _poly("../x", SQUARE), _poly("..", SQUARE)],
             flags={"../../evil": True})
    out = tmp_path / "deep" / "out"
    convert_folder(src, to=to, out=out)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and src not in p.parents]
    assert written and all(out in p.parents for p in written)
    ds = read_dataset(src)
    assert ds.categories == ["..", "../x", "tv/monitor"]  # names are kept verbatim


def test_unsafe_class_names_in_classify_folders(tmp_path):
    from zoo.pipeline.convert import convert_folder

    src = tmp_path / "src"
    _labelme(src, "a", [], flags={"../../evil": True, "ok": False})
    _labelme(src, "b", [], flags={"../../evil": False, "ok": True})
    out = tmp_path / "out"
    convert_folder(src, to="yolo", out=out, task="classify")
    # <split>/<class>/<image>: the split is zoo run's default one, the class folders are the point here
    written = sorted(p.relative_to(out).as_posix().split("/", 1)[1] for p in out.rglob("*") if p.is_file())
    assert written == ["____evil/a.png", "ok/b.png"]


def test_image_id_with_dotdot_cannot_escape(tmp_path):
    from zoo.data.safe_paths import safe_relpath

    out = tmp_path / "out"
    assert out in safe_relpath("../../etc/passwd", out).parents
    assert safe_relpath("a/../../b", out).relative_to(out).as_posix() == "a/b"


def test_out_inside_source_or_not_empty_is_refused(tmp_path):
    from zoo.pipeline.convert import convert_folder

    src = tmp_path / "src"
    _labelme(src, "a", [_poly("a", SQUARE)])
    with pytest.raises(ZooError, match="inside the source"):
        convert_folder(src, to="coco", out=src / "coco")
    with pytest.raises(ZooError, match="inside the source"):
        convert_folder(src, to="coco", out=src)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ZooError, match="not empty"):
        convert_folder(src, to="coco", out=tmp_path / "full")
    assert sorted(p.name for p in src.iterdir()) == ["a.json", "a.png"]


def test_zoo_yaml_unknown_key_suggests(tmp_path):
    _labelme(tmp_path, "a", [_poly("a", SQUARE)])
    (tmp_path / "zoo.yaml").write_text("categorys: [a]\n")
    with pytest.raises(DataError, match="did you mean 'categories'"):
        read_dataset(tmp_path)


def test_labels_file_with_a_name_twice_is_fatal(tmp_path):
    _labelme(tmp_path / "src", "a", [_poly("a", SQUARE)])
    lab = tmp_path / "labels.txt"
    lab.write_text("a\nb\na\n")
    with pytest.raises(DataError, match="listed twice"):
        read_dataset(tmp_path / "src", labels=lab)


def test_orphan_points_warn(tmp_path):
    pt = {"label": "nose", "points": [[30, 25]], "shape_type": "point", "group_id": None}
    pt2 = {"label": "nose", "points": [[5, 5]], "shape_type": "point", "group_id": 7}
    _labelme(tmp_path, "a", [_poly("a", SQUARE), pt, pt2])
    ds = read_dataset(tmp_path)
    assert [w.source.shape for w in ds.warnings] == [1, 2]
    assert "lies in no object" in ds.warnings[0].reason and "group_id 7" in ds.warnings[1].reason


def test_undecodable_mask_is_skipped(tmp_path):
    m = {"label": "a", "points": [[1, 1], [5, 5]], "shape_type": "mask", "mask": "bm90IGEgcG5n"}
    _labelme(tmp_path, "a", [m, _poly("a", SQUARE)])
    ds = read_dataset(tmp_path)
    assert len(ds.images[0].instances) == 1 and "not a base64 PNG" in ds.warnings[0].reason


def test_cli_error_is_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "bad.json").write_text('{"shapes": [')
    r = subprocess.run([sys.executable, "-m", "zoo", "convert", str(tmp_path / "src"), "--to", "coco",
                        "--out", str(tmp_path / "out"), "--from", "labelme"], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error: ") and "bad.json" in lines[0]
    assert "Traceback" not in r.stderr
    assert math.isfinite(1.0)


def test_unreadable_image_header_when_size_needed_is_fatal(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png at all")
    data = {"shapes": [_poly("a", SQUARE)], "imagePath": "a.png", "imageData": None}  # no size: must read it
    (tmp_path / "a.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"a\.png: is not an image PIL can read"):
        read_dataset(tmp_path, "labelme")


def test_yolo_without_class_names_is_fatal(tmp_path):
    _img(tmp_path / "a.jpg")
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DataError, match="no classes.txt or data.yaml"):
        read_dataset(tmp_path, "yolo")


def test_xml_declared_encoding_is_honoured(tmp_path):
    _img(tmp_path / "a.jpg")
    xml = ('<?xml version="1.0" encoding="ISO-8859-1"?><annotation><filename>a.jpg</filename>'
           "<object><name>caf\u00e9</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax>"
           "</bndbox></object></annotation>")
    (tmp_path / "a.xml").write_bytes(xml.encode("latin-1"))
    assert read_dataset(tmp_path).categories == ["caf\u00e9"]
