"""Image + mask folders (``--from masks``): pairing, mask values, the refusals, and the
class-folders reader refusing such folders instead of misreading them."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from zoo.data.raster import semantic_label_map
from zoo.data.reading import detect_format, read_dataset
from zoo.errors import DataError, ZooError

RNG = np.random.default_rng(0)


def _photo(path, w=40, h=32):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


def _label_map(k: int, w=40, h=32, classes=1) -> np.ndarray:
    """A drawn label map: class c (1..classes) in a band of its own, shifted by k."""
    m = np.zeros((h, w), np.uint8)
    for c in range(1, classes + 1):
        m[2 + 6 * (c - 1) + k % 3: 6 + 6 * (c - 1) + k % 3, 3 + k: 20 + k] = c
    return m


def _save(array, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _binary_set(root, n=4, image_dir="image", mask_dir="label", fg=255):
    drawn = {}
    for k in range(n):
        _photo(root / image_dir / f"c{k}.png")
        lm = _label_map(k)
        _save(lm * fg, root / mask_dir / f"c{k}.png")
        drawn[f"c{k}"] = lm
    return drawn


def _same_pixels(ds, drawn: dict):
    got = {r.id: semantic_label_map(r, ds) for r in ds.images}
    assert set(got) == set(drawn)
    for rid, lm in drawn.items():
        np.testing.assert_array_equal(got[rid], lm, err_msg=rid)


def test_sibling_image_and_label_folders_read_as_binary_masks(tmp_path):
    drawn = _binary_set(tmp_path)
    for k in range(2):  # an augmentation and a test folder beside them change nothing
        _photo(tmp_path / "aug" / f"a{k}.png")
    assert detect_format(tmp_path) == "masks"
    ds = read_dataset(tmp_path)
    assert ds.format == "masks" and ds.categories == ["foreground"]
    _same_pixels(ds, drawn)


def test_binary_values_0_1_named_by_labels_txt_and_split_folders(tmp_path):
    drawn = {}
    for split in ("train", "val"):
        for k in range(2):
            _photo(tmp_path / split / "images" / f"{split}{k}.png")
            lm = _label_map(k)
            _save(lm, tmp_path / split / "masks" / f"{split}{k}.png")
            drawn[f"{split}/{split}{k}"] = lm
    (tmp_path / "labels.txt").write_text("tumour\n")
    ds = read_dataset(tmp_path)
    assert ds.categories == ["tumour"]
    assert ds.splits == {"train": ["train/train0", "train/train1"], "val": ["val/val0", "val/val1"]}
    _same_pixels(ds, drawn)


def test_suffixed_stems_in_one_folder_case_insensitive(tmp_path):
    drawn = {}
    for k, suffix in enumerate(["_mask", "_segmentation", "_Annotation", "_gt"]):
        _photo(tmp_path / f"ISIC_{k}.JPG".replace("JPG", "png"))
        lm = _label_map(k)
        _save(lm * 255, tmp_path / f"isic_{k}{suffix}.PNG")
        drawn[f"ISIC_{k}"] = lm
    assert detect_format(tmp_path) == "masks"
    _same_pixels(read_dataset(tmp_path), drawn)


def test_zoo_convert_to_masks_reads_back_pixel_exact(tmp_path, tiny_demo):
    from zoo.cli import main

    out = tmp_path / "masks"
    main(["convert", str(tiny_demo), "--to", "masks", "--out", str(out)])
    source = read_dataset(tiny_demo)
    back = read_dataset(out)
    assert detect_format(out) == "masks"
    assert back.categories == source.categories
    for rec in source.images:
        np.testing.assert_array_equal(semantic_label_map(back.image(rec.id), back), semantic_label_map(rec, source))


def test_index_palette_mask_with_ignore_from_class_names(tmp_path):
    from zoo.adapters.masks import save_label_png

    lm = _label_map(0, classes=3)
    lm[0, :5] = 255
    _photo(tmp_path / "JPEGImages" / "a.png")
    save_label_png(lm, tmp_path / "SegmentationClass" / "a.png")
    (tmp_path / "class_names.txt").write_text("_background_\nliver\nkidney\nspleen\n")
    ds = read_dataset(tmp_path, "masks")
    assert ds.categories == ["liver", "kidney", "spleen"]
    rec = ds.images[0]
    assert [i.ignore for i in rec.instances] == [False, False, False, True]
    np.testing.assert_array_equal(semantic_label_map(rec, ds), lm)


def test_colour_masks_with_cvat_labelmap_and_an_unknown_colour(tmp_path):
    colours = {1: (255, 0, 0), 2: (0, 0, 255)}
    lm = _label_map(1, classes=2)
    rgb = np.zeros(lm.shape + (3,), np.uint8)
    for v, c in colours.items():
        rgb[lm == v] = c
    _photo(tmp_path / "images" / "a.png")
    _save(rgb, tmp_path / "masks" / "a.png")
    (tmp_path / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                           "lesion:255,0,0::\nvessel:0,0,255::\n")
    ds = read_dataset(tmp_path)
    assert ds.categories == ["lesion", "vessel"]
    np.testing.assert_array_equal(semantic_label_map(ds.images[0], ds), lm)
    rgb[0, 0] = (9, 9, 9)
    _save(rgb, tmp_path / "masks" / "a.png")
    with pytest.raises(DataError, match=r"a\.png: holds the colour \(9, 9, 9\), which is no class of .*labelmap.txt"):
        read_dataset(tmp_path)


def test_colour_masks_with_zoo_yaml_colors_and_named_pairing(tmp_path):
    lm = _label_map(2, classes=2)
    rgb = np.zeros(lm.shape + (3,), np.uint8)
    rgb[lm == 1], rgb[lm == 2] = (0, 255, 0), (255, 255, 0)
    _photo(tmp_path / "raw" / "scan_0007.png")
    _save(rgb, tmp_path / "truth" / "gt_0007.png")
    (tmp_path / "zoo.yaml").write_text("masks: {images: raw, masks: truth, pair: '_(\\d+)$'}\n"
                                       "colors: {cyst: [0, 255, 0], duct: [255, 255, 0]}\n")
    assert detect_format(tmp_path) == "masks"
    ds = read_dataset(tmp_path)
    assert ds.categories == ["cyst", "duct"] and [r.id for r in ds.images] == ["scan_0007"]
    np.testing.assert_array_equal(semantic_label_map(ds.images[0], ds), lm)


def test_soft_edges_and_jpeg_masks_are_thresholded_at_half_range_with_a_warning(tmp_path):
    lm = _label_map(0)
    soft = (lm * 255).astype(np.uint8)
    soft[lm.astype(bool) & (np.arange(40) % 5 == 0)] = 200  # anti-aliased inside
    soft[0, :] = 60  # a faint edge: below half, background
    _photo(tmp_path / "images" / "a.png")
    _save(soft, tmp_path / "masks" / "a.png")
    _photo(tmp_path / "images" / "b.png")
    Image.fromarray(lm * 255).save(tmp_path / "masks" / "b.jpg", quality=70)
    ds = read_dataset(tmp_path)
    np.testing.assert_array_equal(semantic_label_map(ds.image("a"), ds), lm)
    jpeg = semantic_label_map(ds.image("b"), ds)
    assert (jpeg == lm).mean() > 0.97
    said = " ".join(p.reason for p in ds.warnings)
    assert "JPEG (lossy)" in said and "soft (anti-aliased) edges" in said


def test_index_values_without_class_names_are_refused(tmp_path):
    _photo(tmp_path / "images" / "a.png")
    _save(_label_map(0, classes=3), tmp_path / "masks" / "a.png")
    with pytest.raises(DataError, match="holds the values 0, 1, 2, 3: more than one class.*class_names.txt"):
        read_dataset(tmp_path)


def test_sixteen_bit_index_mask_keeps_values_and_refuses_an_undeclared_one(tmp_path):
    lm = _label_map(0, classes=2).astype(np.uint16)
    lm[lm == 2] = 300  # class value 300: needs 16 bits
    _photo(tmp_path / "images" / "a.png")
    _save(lm, tmp_path / "masks" / "a.png")
    names = ["_background_", *[f"c{i}" for i in range(1, 301)]]
    (tmp_path / "class_names.txt").write_text("\n".join(names) + "\n")
    ds = read_dataset(tmp_path)
    assert sorted(ds.categories[i.category] for i in ds.images[0].instances) == ["c1", "c300"]
    (tmp_path / "class_names.txt").write_text("_background_\nc1\nc2\n")
    with pytest.raises(DataError, match=r"holds the value 300, which is no class of .*class_names.txt"):
        read_dataset(tmp_path)


@pytest.mark.parametrize("case, message", [
    ("size", r"b\.png: is 20x32 but its image b\.png is 40x32; zoo never resizes a mask"),
    ("orphan", r"orphan\.png: is a mask without an image"),
    ("empty", r"holds no image with a mask"),
])
def test_bad_mask_folders_are_one_line_exit_2_nothing_written(tmp_path, case, message):
    src = tmp_path / "src"
    _binary_set(src, n=2)
    if case == "size":
        _photo(src / "image" / "b.png")
        _save(np.zeros((32, 20), np.uint8), src / "label" / "b.png")
    elif case == "orphan":
        _save(np.zeros((32, 40), np.uint8), src / "label" / "orphan.png")
    else:
        shutil.rmtree(src / "label")
        (src / "label").mkdir()
    with pytest.raises(DataError, match=message):
        read_dataset(src, "masks")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "zoo", "convert", str(src), "--from", "masks", "--to", "coco",
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists() or not any(out.iterdir())


def test_class_folders_refuse_an_image_and_mask_set_with_a_hint(tmp_path):
    _binary_set(tmp_path / "set")
    _photo(tmp_path / "set" / "test" / "t.png")
    with pytest.raises(DataError, match=r"the folders image/, label/ are parts of an image \+ mask set.*--from masks"):
        read_dataset(tmp_path / "set", "folders")
    # masks alone in class-looking folders: two-valued PNGs are no photos
    for k, cls in enumerate(["benign", "malignant", "benign"]):
        _save(_label_map(k) * 255, tmp_path / "only" / cls / f"m{k}.png")
    with pytest.raises(DataError, match=r"hold one or two values: masks, not photos; .*--from masks"):
        read_dataset(tmp_path / "only", "folders")
    with pytest.raises(ZooError) as e:
        detect_format(tmp_path / "only")
    assert any(d.startswith("folders: ") and "--from masks" in d for d in e.value.details)
    assert {d.split(":")[0] for d in e.value.details} >= {"labelme", "voc", "yolo", "coco", "folders", "masks"}


def test_two_readers_equally_sure_ask_for_from(tmp_path, monkeypatch):
    import zoo.adapters.folders as folders
    import zoo.adapters.masks as masks

    _binary_set(tmp_path)
    monkeypatch.setattr(folders, "sniff", lambda path: 0.9)  # a third-party reader as sure as masks
    monkeypatch.setattr(masks, "sniff", lambda path: 0.9)
    with pytest.raises(ZooError, match="alike; say which with --from folders or --from masks"):
        detect_format(tmp_path)


def test_check_names_the_format_and_counts(tmp_path):
    import json

    _binary_set(tmp_path, n=6)
    r = subprocess.run([sys.executable, "-m", "zoo", "check", str(tmp_path), "--format", "json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["format"] == "masks" and "semantic-seg" in report["tasks"]
    assert report["summary"]["images"] == 6 and report["summary"]["instances"] == {"foreground": 6}


def test_datumaro_common_semantic_segmentation(real_fixtures):
    root = real_fixtures / "datumaro" / "common_semantic_segmentation_dataset" / "dataset"
    assert detect_format(root) == "masks"
    ds = read_dataset(root)
    assert ds.categories == ["Animal", "Archway", "Bicyclist", "Child", "Road"]
    rows = {r.id: semantic_label_map(r, ds)[0].tolist() for r in ds.images}
    # Bicyclist [1,1,0,1,1] + Road [0,0,1,0,0]; Animal [1,1,1,0,0] + Child [0,0,0,1,1] (as values i + 1)
    assert rows == {"0001": [3, 3, 5, 3, 3], "0002": [1, 1, 1, 4, 4]}
    assert sum(len(r.instances) for r in ds.images) == 4


def test_datumaro_common_semantic_segmentation_with_prefixes_named_in_zoo_yaml(real_fixtures, tmp_path):
    src = real_fixtures / "datumaro" / "common_semantic_segmentation_dataset" / "non_standard_dataset"
    root = tmp_path / "copy"
    shutil.copytree(src, root)
    (root / "zoo.yaml").write_text("masks: {images: images, masks: masks, pair: '(?:image_|gt_)(\\d+)'}\n")
    ds = read_dataset(root)
    names = ds.categories
    rows = {r.id: [names[v - 1] if v else None for v in semantic_label_map(r, ds)[0].tolist()] for r in ds.images}
    assert rows == {"image_0001": ["Bicyclist", "Bicyclist", "Road", "Bicyclist", "Bicyclist"],
                    "image_0002": ["Animal", "Animal", "Road", "SignSymbol", "SignSymbol"]}


def test_datumaro_voc_segmentation_class(real_fixtures, tmp_path):
    root = real_fixtures / "datumaro" / "voc_dataset" / "voc_dataset1"
    ds = read_dataset(root, "masks")
    assert [r.id for r in ds.images] == ["2007_000001"]  # 2007_000002 has no mask: unannotated
    (inst,) = ds.images[0].instances
    assert ds.categories[inst.category] == "bicycle"
    assert semantic_label_map(ds.images[0], ds).min() == 2  # the whole image, bicycle = value 2


def test_unet_trains_on_an_image_and_mask_folder_as_it_ships(tmp_path):
    from zoo.cli import main

    _binary_set(tmp_path / "data", n=6)
    out = tmp_path / "runs"
    try:
        main(["run", "--task", "semantic-seg", "--backend", "unet", "--data", str(tmp_path / "data"), "--epochs", "1",
              "--imgsz", "32", "--batch", "2", "--device", "cpu", "--out", str(out), "--set", "encoder_depth=3"])
    except SystemExit as e:
        assert e.code in (0, None)
    assert (out / "unet-semantic-seg" / "metrics.json").is_file()


def test_isic_folders_as_they_ship(tmp_path):
    drawn = {}
    for k in range(3):
        _photo(tmp_path / "ISIC2018_Task1-2_Training_Input" / f"ISIC_000000{k}.jpg")
        lm = _label_map(k)
        _save(lm * 255, tmp_path / "ISIC2018_Task1_Training_GroundTruth" / f"ISIC_000000{k}_segmentation.png")
        drawn[f"ISIC_000000{k}"] = lm
    (tmp_path / "ISIC2018_Task1-2_Training_Input" / "LICENSE.txt").write_text("CC-BY-NC\n")
    assert detect_format(tmp_path) == "masks"
    _same_pixels(read_dataset(tmp_path), drawn)
    with pytest.raises(DataError, match="hold one or two values: masks, not photos"):
        read_dataset(tmp_path, "folders")


def test_busi_numbered_second_masks_are_painted_into_one(tmp_path):
    drawn = {}
    for cls in ("benign", "malignant"):
        for k in range(2):
            stem = f"{cls} ({k + 1})"
            _photo(tmp_path / cls / f"{stem}.png")
            first, second = _label_map(k), np.zeros((32, 40), np.uint8)
            second[20:28, 25:35] = 1
            _save(first * 255, tmp_path / cls / f"{stem}_mask.png")
            _save(second * 255, tmp_path / cls / f"{stem}_mask_1.png")
            drawn[f"{cls}/{stem}"] = np.maximum(first, second)
    assert detect_format(tmp_path) == "masks"
    ds = read_dataset(tmp_path)
    _same_pixels(ds, drawn)
    from zoo.data.lint import unannotated_images

    assert unannotated_images(ds) == []  # the second masks are no unannotated images


def test_png_size_from_its_header_keeps_an_exif_orientation(tmp_path):
    from zoo.adapters.common import image_size

    exif = Image.Exif()
    exif[0x0112] = 6  # turned a quarter: width and height swap
    Image.new("RGB", (40, 20)).save(tmp_path / "turned.png", exif=exif.tobytes())
    Image.new("RGB", (40, 20)).save(tmp_path / "plain.png")
    assert image_size(tmp_path / "turned.png") == (20, 40) and image_size(tmp_path / "plain.png") == (40, 20)
