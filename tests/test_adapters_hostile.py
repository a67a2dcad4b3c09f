"""Hostile and careless input (issue 11): each defect found by probing the readers and
writers, one test each. The rules are those of adapters/POLICY.md."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.pipeline.convert import check_folder, convert_folder
from zoo.errors import DataError, ZooError
from zoo.data.reading import read_dataset

W, H = 40, 30
SQUARE = [[2, 2], [12, 2], [12, 12], [2, 12]]


def _png(size=(W, H)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 30, 60)).save(buf, format="PNG")
    return buf.getvalue()


def _img(path: Path, size=(W, H)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_png(size))
    return path


def _shape(label, pts, shape_type="polygon", **kw):
    return {"label": label, "points": pts, "shape_type": shape_type, "group_id": None, "flags": {}, **kw}


def _labelme(folder: Path, stem: str, shapes, *, image_path=None, image=True, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if image and image_path is None:
        _img(folder / f"{stem}.png")
    data = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": image_path or f"{stem}.png",
            "imageData": None, "imageHeight": H, "imageWidth": W}
    data.update(extra)
    f = folder / f"{stem}.json"
    f.write_text(json.dumps(data))
    return f


def _bomb_png(w=60000, h=60000) -> bytes:
    """A small PNG whose header declares w x h pixels."""
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _reasons(ds) -> str:
    return "\n".join(str(w) for w in ds.warnings)


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------ defect 2: non-images copied as images


@pytest.mark.parametrize("named", ["/proc/self/environ", "../secret.txt"])
def test_labelme_image_path_to_a_non_image_is_a_warning_and_never_copied(tmp_path, named):
    src = tmp_path / "data"
    (tmp_path / "secret.txt").write_text("API_KEY=hunter2\n")
    _labelme(src, "ok", [_shape("a", SQUARE)])
    _labelme(src, "evil", [_shape("a", SQUARE)], image_path=named)
    ds = convert_folder(src, to="coco", out=tmp_path / "out")
    assert "evil.json" in _reasons(ds) and "is not an image" in _reasons(ds)
    assert _files(tmp_path / "out" / "images") == ["ok.png"]
    for f in (tmp_path / "out").rglob("*"):
        assert not f.is_file() or b"hunter2" not in f.read_bytes()


def test_voc_filename_and_coco_file_name_naming_a_non_image_are_skipped(tmp_path):
    voc = tmp_path / "voc"
    voc.mkdir()
    _img(voc / "ok.jpg")
    (voc / "notes.jpg").write_text("not an image")
    for stem, name in (("ok", "ok.jpg"), ("evil", "notes.jpg")):
        (voc / f"{stem}.xml").write_text(
            f"<annotation><filename>{name}</filename><size><width>{W}</width><height>{H}</height></size>"
            "<object><name>a</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>"
            "</object></annotation>")
    ds = convert_folder(voc, to="voc", out=tmp_path / "out-voc")
    assert [r.id for r in ds] == ["ok"] and "notes.jpg: is not an image" in _reasons(ds)
    assert _files(tmp_path / "out-voc" / "JPEGImages") == ["ok.jpg"]

    coco = tmp_path / "coco"
    _img(coco / "ok.png")
    (coco / "notes.png").write_text("not an image")
    data = {"images": [{"id": 1, "file_name": "ok.png", "width": W, "height": H},
                       {"id": 2, "file_name": "notes.png", "width": W, "height": H}],
            "annotations": [], "categories": [{"id": 1, "name": "a"}]}
    (coco / "annotations.json").write_text(json.dumps(data))
    ds = convert_folder(coco, to="coco", out=tmp_path / "out-coco")
    assert [r.id for r in ds] == ["ok"] and "notes.png" in _reasons(ds)
    assert _files(tmp_path / "out-coco" / "images") == ["ok.png"]


# ------------------------------------------------------------ defect 3: tracebacks


@pytest.mark.parametrize("gid", [[1], {"a": 1}])
def test_group_id_of_the_wrong_type_skips_the_shape(tmp_path, gid):
    _labelme(tmp_path, "a", [_shape("a", SQUARE), _shape("b", SQUARE, group_id=gid)])
    ds = read_dataset(tmp_path, "labelme")
    assert ds.categories == ["a"] and "group_id" in _reasons(ds)


def test_points_holding_null_skip_the_shape(tmp_path):
    _labelme(tmp_path, "a", [_shape("a", SQUARE), _shape("b", [[1, 2], None, [3, None]])])
    ds = read_dataset(tmp_path, "labelme")
    assert ds.categories == ["a"] and "not two finite numbers" in _reasons(ds)


@pytest.mark.parametrize("image_data,why", [
    ("!!!not base64!!!", "not base64"),
    (base64.b64encode(b"hello, not an image").decode(), "not an image"),
    (base64.b64encode(_png()[:60]).decode(), "does not decode"),
    (42, "is a int"),
    (base64.b64encode(_bomb_png()).decode(), "decompression bomb"),
])
def test_bad_image_data_is_a_warning_and_the_image_skipped(tmp_path, image_data, why):
    _labelme(tmp_path, "ok", [_shape("a", SQUARE)])
    _labelme(tmp_path, "bad", [_shape("a", SQUARE)], image_path="gone.png", imageData=image_data)
    ds = read_dataset(tmp_path, "labelme")
    assert [r.id for r in ds] == ["ok"]
    assert "bad.json" in _reasons(ds) and why in _reasons(ds)


def test_decompression_bomb_file_is_never_opened(tmp_path):
    _labelme(tmp_path, "ok", [_shape("a", SQUARE)])
    _labelme(tmp_path, "bomb", [_shape("a", SQUARE)])
    (tmp_path / "bomb.png").write_bytes(_bomb_png())
    ds = convert_folder(tmp_path, to="masks", out=tmp_path.parent / "out")
    assert [r.id for r in ds] == ["ok"] and "decompression bomb" in _reasons(ds)


def test_json_nested_100000_deep_is_a_clean_error(tmp_path):
    (tmp_path / "a.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(DataError, match="a.json: is not valid JSON"):
        read_dataset(tmp_path / "a.json", "labelme")


def test_names_longer_than_the_filesystem_allows(tmp_path):
    _labelme(tmp_path / "src", "ok", [_shape("a", SQUARE)])
    _labelme(tmp_path / "src", "long", [_shape("a", SQUARE)], image_path="x" * 5000 + ".png", image=False)
    ds = read_dataset(tmp_path / "src", "labelme")
    assert [r.id for r in ds] == ["ok"] and "image not found" in _reasons(ds)
    # an id of 250 characters (the filesystem's limit is 255 bytes) keeps its suffix when written
    long_stem = "é" * 125
    src = tmp_path / "src2"
    _labelme(src, long_stem, [_shape("a", SQUARE)])
    convert_folder(src, to="yolo", out=tmp_path / "out")
    (img,) = (tmp_path / "out" / "images" / "train").iterdir()
    (txt,) = (tmp_path / "out" / "labels" / "train").iterdir()
    assert img.suffix == ".png" and txt.suffix == ".txt" and img.stem == txt.stem
    assert len(img.name.encode()) <= 255


@pytest.mark.parametrize("radius", [1e14, 1e17])
def test_huge_circles_are_clipped_in_bounded_memory(tmp_path, radius):
    _labelme(tmp_path / "src", "a", [_shape("c", [[20, 15], [20 + radius, 15]], "circle")])
    ds = convert_folder(tmp_path / "src", to="masks", out=tmp_path / "out")
    inst = ds.images[0].instances[0]
    assert inst.bbox == (0.0, 0.0, float(W), float(H)) and len(inst.polygons[0]) <= 2 * 2048
    label_map = np.asarray(Image.open(tmp_path / "out" / "SegmentationClass" / "a.png"))
    assert label_map.shape == (H, W) and (label_map == 1).all()


def test_declared_size_far_larger_than_the_image_uses_the_image(tmp_path):
    ignore = _shape("__ignore__", [[0, 0], [99_999, 0], [99_999, 99_999]])
    _labelme(tmp_path / "src", "a", [_shape("a", SQUARE), ignore], imageWidth=100_000, imageHeight=100_000)
    ds = convert_folder(tmp_path / "src", to="masks", out=tmp_path / "out")
    assert (ds.images[0].width, ds.images[0].height) == (W, H)
    assert "declares the image 100000x100000" in _reasons(ds)
    assert np.asarray(Image.open(tmp_path / "out" / "SegmentationClass" / "a.png")).shape == (H, W)


def _coco(folder: Path, annotations, images=None, categories=None) -> Path:
    _img(folder / "a.png")
    data = {"images": images if images is not None else [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
            "annotations": annotations,
            "categories": categories if categories is not None else [{"id": 1, "name": "cell"}]}
    f = folder / "annotations.json"
    f.write_text(json.dumps(data))
    return f


GOOD = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0,
        "segmentation": [[1, 1, 6, 1, 6, 6, 1, 6]]}


@pytest.mark.parametrize("bad,why", [
    ({"segmentation": {"size": [3000, 4000], "counts": [0, 12_000_000]}, "iscrowd": 1}, "is not the image's"),
    ({"segmentation": {"size": [H, W], "counts": [5, 10**9]}, "iscrowd": 1}, "cover"),
    ({"segmentation": {"size": [H, W], "counts": "garbage~~"}, "iscrowd": 1}, "not a valid compressed"),
    ({"bbox": [float("nan"), 1, 5, 5]}, "not 4 finite numbers"),
    ({"bbox": ["1", 1, 5, 5]}, "not 4 finite numbers"),
    ({"segmentation": [[1, 1, float("nan"), 1, 6, 6, 1, 6]]}, "finite numbers"),
    ({"keypoints": [1, "x"]}, "keypoints"),
    ({"category_id": [1]}, "unknown category_id"),
])
def test_bad_coco_annotation_is_skipped_never_decoded(tmp_path, bad, why):
    """An RLE that disagrees with the image used to segfault inside pycocotools; a NaN bbox
    became a whole-image box; garbage counts gave an area larger than the image."""
    _coco(tmp_path / "src", [GOOD, {**GOOD, "id": 2, **bad}])
    ds = check_folder(tmp_path / "src")
    assert len(ds.images[0].instances) == 1 and why in _reasons(ds)
    out = convert_folder(tmp_path / "src", to="masks", out=tmp_path / "out")
    assert len(out.images[0].instances) == 1


@pytest.mark.parametrize("data,why", [
    ({"images": ["a.png"], "annotations": []}, "images[0] is not an object"),
    ({"annotations": ["x"]}, "annotations[0] is not an object"),
    ({"categories": [{"name": "cell"}, {"id": 1, "name": "cell"}]}, "categories[0] is not an object with an integer id"),
    ({"annotations": [{**GOOD, "image_id": 99}]}, "refers to image_id 99"),
])
def test_coco_entries_of_the_wrong_type_are_warnings(tmp_path, data, why):
    images = data.get("images")
    if images is not None:
        images = images + [{"id": 1, "file_name": "a.png", "width": W, "height": H}]
    _coco(tmp_path, data.get("annotations", [GOOD]), images=images, categories=data.get("categories"))
    ds = read_dataset(tmp_path, "coco")
    assert len(ds.images) == 1 and why in _reasons(ds)


@pytest.mark.parametrize("kpt_shape", ["5", '"abc"', "[1, 1]", "[300000000, 3]"])
def test_yolo_bad_kpt_shape_is_fatal(tmp_path, kpt_shape):
    _img(tmp_path / "images" / "train" / "a.png")
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "data.yaml").write_text(f"names: [cell]\nkpt_shape: {kpt_shape}\n")
    with pytest.raises(DataError, match="data.yaml: kpt_shape .* must be"):
        read_dataset(tmp_path, "yolo")


@pytest.mark.parametrize("flip_idx", ["[0, 0]", "[0, 1, 2]", '"abc"', "[1.0, 0]"])
def test_yolo_bad_flip_idx_is_a_warning_and_never_flips(tmp_path, flip_idx):
    _img(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.2 0.4 0.5 2 0.6 0.5 2\n")
    (tmp_path / "data.yaml").write_text(f"names: [cell]\nkpt_shape: [2, 3]\nflip_idx: {flip_idx}\n")
    ds = read_dataset(tmp_path, "yolo")
    assert ds.flip_idx is None and "is not an order of the 2 keypoints; ignored" in _reasons(ds)
    assert ds.images[0].instances[0].keypoints == [(0.4 * W, H / 2, 2), (0.6 * W, H / 2, 2)]


def test_yolo_keypoint_of_huge_values_is_clipped_with_a_coco_visibility(tmp_path):
    """1e308 x the width is inf (written as null) and 1e308 as a visibility overflowed the
    JSON writer."""
    _img(tmp_path / "src" / "images" / "a.png")
    (tmp_path / "src" / "labels").mkdir()
    (tmp_path / "src" / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2 1e308 0.5 1e308\n")
    (tmp_path / "src" / "data.yaml").write_text("names: [p]\nkpt_shape: [1, 3]\n")
    ds = convert_folder(tmp_path / "src", to="coco", out=tmp_path / "out")
    (ann,) = json.loads((tmp_path / "out" / "annotations.json").read_text())["annotations"]
    assert ann["keypoints"] == [float(W), H / 2, 2] and "clipped" in _reasons(ds)


def test_masks_of_more_categories_than_a_png_holds_is_one_line(tmp_path):
    _labelme(tmp_path / "src", "a", [_shape(f"c{i}", [[1, 1], [5, 5]], "rectangle") for i in range(255)])
    with pytest.raises(DataError, match="has 255 categories; a mask PNG holds at most 254"):
        convert_folder(tmp_path / "src", to="masks", out=tmp_path / "out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_one_line(tmp_path):
    _labelme(tmp_path / "src", "a", [_shape("a", SQUARE)])
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(ZooError, match="cannot write .* under --out"):
            convert_folder(tmp_path / "src", to="yolo", out=out)
    finally:
        out.chmod(0o700)


def test_full_disk_under_out_is_one_line_exit_2(tmp_path):
    """A disk that fills up: the file-size limit makes every write past 2 KB fail with EFBIG."""
    import subprocess
    import sys

    _labelme(tmp_path / "src", "a", [_shape("a", SQUARE)])
    noise = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "src" / "a.png")  # ~3.6 KB: past the limit
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048)); from zoo.cli import main; "
            "sys.argv = ['zoo'] + sys.argv[1:]; main()")
    r = subprocess.run([sys.executable, "-c", code, "convert", str(tmp_path / "src"), "--to", "masks",
                        "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0] and "Traceback" not in r.stderr


def test_coco_images_known_only_by_size_fail_before_writing(tmp_path):
    _coco(tmp_path / "src", [GOOD], images=[{"id": 1, "file_name": "gone.png", "width": W, "height": H}])
    with pytest.raises(ZooError, match="1 image.s. have no image file .* yolo output copies the images"):
        convert_folder(tmp_path / "src", to="yolo", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    convert_folder(tmp_path / "src", to="coco", out=tmp_path / "out2", copy_images=False)


# ------------------------------------------------------------ defect 4: silent corruption


def test_two_ids_with_one_safe_name_are_both_written(tmp_path):
    src = tmp_path / "src"
    _labelme(src, "..a", [_shape("a", SQUARE)])
    _labelme(src, "_a", [_shape("b", SQUARE)])
    for to in ("coco", "yolo", "voc", "labelme", "masks"):
        out = tmp_path / f"out-{to}"
        convert_folder(src, to=to, out=out)
        assert len([p for p in out.rglob("*.png") if "SegmentationClass" not in p.parts]) == 2, to
    coco = json.loads((tmp_path / "out-coco" / "annotations.json").read_text())
    assert sorted(im["file_name"] for im in coco["images"]) == ["_a.png", "_a_2.png"]


def test_label_with_a_line_break_is_dropped_not_shifting_class_lines(tmp_path):
    _labelme(tmp_path / "src", "a", [_shape("a", SQUARE), _shape("b\nc", SQUARE), _shape("z", SQUARE)])
    ds = convert_folder(tmp_path / "src", to="voc", out=tmp_path / "out")
    assert ds.categories == ["a", "z"] and "line break" in _reasons(ds)
    assert (tmp_path / "out" / "class_names.txt").read_text().splitlines() == ["a", "z"]
    ds = convert_folder(tmp_path / "src", to="coco", out=tmp_path / "out-coco")  # the streaming path
    coco = json.loads((tmp_path / "out-coco" / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["a", "z"] and len(coco["annotations"]) == 2
    assert "line break" in _reasons(ds)


def test_voc_output_of_two_subfolders_with_one_file_name_reads_back(tmp_path):
    for sub in ("x", "y"):
        _labelme(tmp_path / "src" / sub, "a", [_shape(sub, [[1, 1], [9, 9]], "rectangle")])
    convert_folder(tmp_path / "src", to="voc", out=tmp_path / "voc")
    ds = read_dataset(tmp_path / "voc")
    assert sorted(r.id for r in ds) == ["x/a", "y/a"] and not ds.warnings
    assert sorted(ds.categories[r.instances[0].category] for r in ds) == ["x", "y"]


# ------------------------------------------------------------ defect 5: misdetection, check = convert


@pytest.mark.parametrize("content", [b"", b"[]", b"42", b"null"])
def test_folder_whose_annotation_file_is_not_understood_is_not_an_image_folder(tmp_path, content):
    _img(tmp_path / "a.png")
    (tmp_path / "a.json").write_bytes(content)
    with pytest.raises(ZooError, match=r"a\.json is in none of these formats"):
        read_dataset(tmp_path)


def test_yolo_folder_with_malformed_lines_is_not_an_image_folder(tmp_path):
    _img(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("cell at the top left\n")
    (tmp_path / "classes.txt").write_text("cell\n")
    with pytest.raises(ZooError, match="no annotations found"):
        read_dataset(tmp_path)
    ds = read_dataset(tmp_path, "yolo")  # named: read, the bad line a warning
    assert "is not numbers" in _reasons(ds)


def test_folder_without_a_readable_image_is_fatal(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.png").write_text("not a png")
    with pytest.raises(DataError, match="holds no image zoo could read"):
        read_dataset(tmp_path, "folders")


@pytest.mark.parametrize("fmt", ["labelme", "coco", "voc", "auto"])
def test_fifo_and_device_named_as_annotations_are_never_read(tmp_path, fmt):
    """A FIFO would block the reader for ever and /dev/zero would fill memory."""
    src = tmp_path / "src"
    _labelme(src, "a", [_shape("a", SQUARE)])
    os.mkfifo(src / "pipe.json")
    os.mkfifo(src / "pipe.xml")
    (src / "zero.json").symlink_to("/dev/zero")
    if fmt in ("labelme", "auto"):
        assert [r.id for r in read_dataset(src, fmt)] == ["a"]
    else:
        with pytest.raises(ZooError):
            read_dataset(src, fmt)
