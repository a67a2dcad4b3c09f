"""Decoding (zoo.pixels) and the intensity rule (zoo.data.intensity): deep pixels keep their
range, one rule per dataset maps them to 8-bit, and every backend's data path sees the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.data.intensity import choose_intensity, with_intensity
from zoo.data.reading import read_dataset
from zoo.dataset import ImageRecord
from zoo.errors import ConfigError, DataError, ZooError
from zoo.pixels import IntensityRule, decode, parse_intensity

H, W = 48, 64


def gradient12() -> np.ndarray:
    """A 12-bit gradient over the whole range 0..4095."""
    return (np.arange(H * W).reshape(H, W) * 4095 // (H * W - 1)).astype(np.uint16)


def save16(a: np.ndarray, path: Path) -> Path:
    Image.fromarray(a.astype(np.uint16)).save(path)
    return path


def labelme_folder(root: Path, images: dict[str, np.ndarray], box=(8, 8, 40, 32)) -> Path:
    """A labelme folder: each 16-bit PNG with one rectangle 'cell'."""
    root.mkdir(parents=True, exist_ok=True)
    for stem, a in images.items():
        save16(a, root / f"{stem}.png")
        x0, y0, x1, y1 = box
        shape = {"label": "cell", "points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], "shape_type": "polygon",
                 "group_id": None, "flags": {}}
        (root / f"{stem}.json").write_text(json.dumps({
            "version": "5.4.1", "flags": {}, "shapes": [shape], "imagePath": f"{stem}.png", "imageData": None,
            "imageHeight": a.shape[0], "imageWidth": a.shape[1]}))
    return root


# -- decoding -------------------------------------------------------------------------------------


def test_a_12_bit_png_keeps_its_range_and_is_not_saturated(tmp_path):
    g = gradient12()
    rec = ImageRecord("g", W, H, file=save16(g, tmp_path / "g.png"))
    d = rec.pixels()
    assert d.deep and d.array.dtype == np.uint16 and np.array_equal(d.array, g)
    assert "16-bit" in d.how
    rgb = rec.load_rgb()  # no dataset rule: the image's own 0.5-99.5 percentiles
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 0] == 255).mean() < 0.01  # PIL's convert("RGB") made 94% of it white
    assert np.all(np.diff(rgb[..., 0].ravel().astype(int)) >= 0)  # still a gradient


def test_a_rule_maps_its_window_onto_0_255(tmp_path):
    g = gradient12()
    rule = IntensityRule("window", 1000.0, 3000.0)
    rec = ImageRecord("g", W, H, file=save16(g, tmp_path / "g.png"), intensity=rule)
    rgb = rec.load_rgb()[..., 0].astype(int)
    assert np.all(rgb[g <= 1000] == 0) and np.all(rgb[g >= 3000] == 255)
    mid = (g > 1000) & (g < 3000)
    assert np.abs(rgb[mid] - (g[mid] - 1000) / 2000 * 255).max() <= 0.5 + 1e-6


def test_tiff_float_16_bit_and_pages(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    g = gradient12()
    tifffile.imwrite(tmp_path / "f.tif", g.astype(np.float32) / 7)
    d = decode(tmp_path / "f.tif")
    assert d.deep and d.array.dtype == np.float32 and np.allclose(d.array, g / 7)
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([g, g + 1, g + 2]), photometric="minisblack")
    assert np.array_equal(decode(f"{tmp_path / 'stack.tif'}#2").array, g + 2)
    with pytest.raises(DataError, match="page 5 does not exist"):
        decode(f"{tmp_path / 'stack.tif'}#5")


def test_16_bit_colour_png_is_not_cut_to_8_bits(tmp_path):
    import cv2

    g = gradient12()
    cv2.imwrite(str(tmp_path / "c.png"), np.stack([g // 3, g // 2, g], axis=-1))  # BGR
    d = decode(tmp_path / "c.png")
    assert d.deep and d.array.dtype == np.uint16
    assert np.array_equal(d.array[..., 0], g) and np.array_equal(d.array[..., 2], g // 3)


def test_8_bit_images_decode_as_before(tmp_path):
    a = (np.arange(H * W).reshape(H, W) % 256).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    rec = ImageRecord("a", W, H, file=tmp_path / "a.png")
    assert not rec.is_deep() and not rec.pixels().deep
    assert np.array_equal(rec.load_rgb(), np.asarray(Image.open(tmp_path / "a.png").convert("RGB")))


# -- the rule -------------------------------------------------------------------------------------


def test_intensity_specs_round_trip_and_bad_ones_say_what_is_expected():
    kind, rule = parse_intensity("window:40,400")
    assert kind == "window" and (rule.low, rule.high) == (-160.0, 240.0)
    assert parse_intensity(rule.spec)[1] == rule
    z = parse_intensity("zscore:100,10")[1]
    assert (z.low, z.high) == (70.0, 130.0) and parse_intensity(z.spec)[1] == z
    assert parse_intensity("auto") == ("auto", None)
    for bad in ("window:40", "wndow", "percentile:5,1"):
        with pytest.raises(ConfigError, match="intensity"):
            parse_intensity(bad)


def test_config_records_the_rule_given_with_set():
    from zoo.config import BackendConfig, resolve_config

    c = resolve_config(BackendConfig, backend="x", task="detect", sets=["intensity=window:40,400"])
    assert c.intensity == "window:40,400"
    with pytest.raises(ConfigError):
        resolve_config(BackendConfig, backend="x", task="detect", sets=["intensity=bright"])


def test_auto_is_percentile_over_the_training_foreground(tmp_path):
    from zoo.data.raster import instance_mask

    a = np.zeros((H, W), np.uint16)
    a[4:36, 4:44] = 1000 + np.arange(32 * 40).reshape(32, 40) * 2  # 1000..3558 around the box, 0 elsewhere
    ds = read_dataset(labelme_folder(tmp_path / "d", {"a": a}), "labelme")
    chosen = choose_intensity("auto", ds)
    rec = ds.images[0]
    fg = a[instance_mask(rec.instances[0], H, W)].astype(float)  # what the annotation covers
    assert chosen.rule.kind == "percentile" and fg.min() >= 1000
    assert chosen.rule.low == pytest.approx(np.percentile(fg, 0.5))
    assert chosen.rule.high == pytest.approx(np.percentile(fg, 99.5))
    assert "foreground" in chosen.reason
    assert choose_intensity("minmax", ds).rule == IntensityRule("minmax", 0.0, 3558.0)


def test_auto_leaves_8_bit_data_alone(tmp_path):
    root = tmp_path / "d"
    labelme_folder(root, {"a": gradient12()})
    Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "a.png")  # now 8-bit
    assert choose_intensity("auto", read_dataset(root, "labelme")).rule is None


def test_mixed_depth_and_none_on_deep_data_are_refused(tmp_path):
    root = labelme_folder(tmp_path / "d", {"a": gradient12(), "b": gradient12()})
    with pytest.raises(ZooError, match="intensity=none"):
        choose_intensity("none", read_dataset(root, "labelme"))
    with pytest.raises(ZooError, match="DICOM WindowCenter"):
        choose_intensity("window", read_dataset(root, "labelme"))
    Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "b.png")
    with pytest.raises(ZooError, match="mix 8-bit"):
        choose_intensity("auto", read_dataset(root, "labelme"))


# -- writing pixels out ---------------------------------------------------------------------------


def test_copy_image_writes_the_rules_pixels_and_copies_plain_files(tmp_path):
    from zoo.adapters.writing import copy_image

    g = gradient12()
    rec = ImageRecord("g", W, H, file=save16(g, tmp_path / "g.png"))
    faithful = copy_image(rec, tmp_path / "out1")
    assert faithful.read_bytes() == (tmp_path / "g.png").read_bytes()  # no rule: the file itself
    ruled = rec.__class__(**{**{f: getattr(rec, f) for f in rec.__slots__}, "intensity": IntensityRule("minmax", 0, 4095)})
    written = copy_image(ruled, tmp_path / "out2")
    assert np.array_equal(np.asarray(Image.open(written).convert("RGB")), ruled.load_rgb())


def test_every_backends_data_path_sees_the_same_pixels(tmp_path):
    """One 12-bit dataset: what yolov8 (files it reads with OpenCV), smp, torchvision, yolact,
    detectron2 (zoo's records), MONAI (the same, unrounded) and nnU-Net (deep, then its own
    normalisation) get is the rule's 8-bit output, up to each one's own resizing and scaling,
    undone here."""
    import cv2

    g = gradient12()
    ds = read_dataset(labelme_folder(tmp_path / "d", {"a": g, "b": 4095 - g}), "labelme")
    rule = choose_intensity("auto", ds).rule
    ds = with_intensity(ds, rule)
    expected = {r.id: np.repeat(rule.to_uint8(r.pixels().array)[..., None], 3, axis=2) for r in ds.images}
    assert all(0 < e.mean() < 255 for e in expected.values())

    for r in ds.images:  # detectron2's mapper and yolact open records; smp / monai load_rgb
        assert np.array_equal(np.asarray(r.open()), expected[r.id])
        assert np.array_equal(r.load_rgb(), expected[r.id])

    from zoo.plugins.yolov8.convert import write_dataset

    data = write_dataset("semantic-seg", ds.subset(["a"]), ds.subset(["b"]), tmp_path / "yolo")
    written = sorted(p for p in Path(data).parent.rglob("*.png"))
    assert len(written) == 2
    for p in written:  # ultralytics reads with cv2.imread (BGR)
        assert np.array_equal(cv2.imread(str(p))[..., ::-1], expected[p.stem])

    torch = pytest.importorskip("torch")
    from zoo.training.dense.samples import letterboxed_pair

    img, _ = letterboxed_pair(ds.images[0], ds.meta(), imgsz=W, side=W, keep_aspect=True)
    assert np.array_equal(img[:H], expected["a"])

    from zoo.training.dense.samples import MEAN, STD, SegmentationSamples

    monai = SegmentationSamples(ds.meta(), imgsz=W, side=W, deep=True)  # what MONAI's networks train on
    x, _ = monai(ds.images[0])
    unrounded = (x.numpy().transpose(1, 2, 0) * STD + MEAN)[:H]  # its normalisation undone
    assert np.abs(unrounded - rule.to_unit(g)[..., None] * 255).max() < 1e-3  # every level, not 256
    assert np.abs(unrounded - expected["a"]).max() <= 0.5 + 1e-3  # the others' pixels, before rounding

    from zoo.plugins.tv_models.rcnn import load_image

    tensor, _, _ = load_image(ds.images[1], imgsz=W)
    assert torch.equal((tensor * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(expected["b"]))

    from zoo.plugins.nnunet.raw import network_input

    deep, channels = network_input(ds.images[0])
    assert deep.dtype == np.uint16 and np.array_equal(deep[0], g) and len(channels) == 1  # the full range
    assert np.array_equal(rule.to_uint8(deep[0]), expected["a"][..., 0])


# -- zoo check ------------------------------------------------------------------------------------


def test_check_flags_another_depth_and_a_constant_image(tmp_path):
    from zoo.data.lint import lint_folder

    g = gradient12()
    root = labelme_folder(tmp_path / "d", {"a": g, "b": 4095 - g, "c": g // 2, "flat": np.full((H, W), 700)})
    Image.fromarray((g // 16).astype(np.uint8)).convert("RGB").save(root / "c.png")  # an 8-bit colour export
    found = {(f.check, Path(f.file).name): f for f in lint_folder(root).findings if f.check in ("pixel-depth", "constant-image")}
    assert set(found) == {("pixel-depth", "c.png"), ("constant-image", "flat.png")}
    assert found["pixel-depth", "c.png"].message == "8-bit, 1 channel while 3 image(s) are 16-bit, 1 channel"


def test_check_flags_dicom_modalities_mixed_in_one_class(tmp_path):
    pytest.importorskip("pydicom")
    from test_dicom import write_dicom

    from zoo.data.lint import lint_folder

    root = tmp_path / "folders"
    for k, modality in enumerate(["CT", "CT", "MR"]):
        (root / "tumour").mkdir(parents=True, exist_ok=True)
        write_dicom(root / "tumour" / f"s{k}.dcm", gradient12() // (k + 1), modality=modality)
        (root / "healthy").mkdir(exist_ok=True)
        write_dicom(root / "healthy" / f"h{k}.dcm", 4095 - gradient12() // (k + 1), modality="CT")
    found = [f for f in lint_folder(root, fmt="folders").findings if f.check == "mixed-modality"]
    assert len(found) == 1 and found[0].message == "class 'tumour' mixes DICOM modalities: CT (2), MR (1)"
    assert Path(found[0].file).name == "s2.dcm"


def test_a_16_bit_colour_tiff_is_deep_though_pil_opens_it_as_8_bit_rgb(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    g = gradient12()
    tifffile.imwrite(tmp_path / "rgb16.tif", np.stack([g, g // 2, g // 3], axis=-1), photometric="rgb")
    rec = ImageRecord("rgb16", W, H, file=tmp_path / "rgb16.tif")
    assert rec.is_deep()
    d = rec.pixels()
    assert d.array.shape == (H, W, 3) and np.array_equal(d.array[..., 1], g // 2)
