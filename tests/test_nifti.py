"""NIfTI volumes as 2D slices (adapters/nifti.py, zoo/nifti.py): the nnU-Net / Decathlon raw
layout and image + label pairs, sliced along nnU-Net's 2D axis, spacing from the header,
grouped by volume; bad volumes in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from zoo.data.raster import semantic_label_map  # noqa: E402
from zoo.data.reading import read_dataset  # noqa: E402
from zoo.errors import DataError  # noqa: E402

SHAPE = (20, 16, 6)  # x, y, z


def volumes(seed: int, shape=SHAPE):
    """A CT-like int16 volume and its labels: liver (1) on slices 1..3, tumour (2) on slice 2."""
    img = np.random.default_rng(seed).integers(-1000, 1000, shape).astype(np.int16)
    lab = np.zeros(shape, np.uint8)
    lab[4:10, 3:9, 1:4] = 1
    lab[12:15, 10:14, 2] = 2
    return img, lab


def save(a: np.ndarray, path: Path, zooms=(0.8, 0.7, 5.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(a, np.diag([*zooms, 1.0])), path)
    return path


def decathlon(root: Path, n=3, labels=None, zooms=(0.8, 0.7, 5.0)) -> Path:
    for c in range(n):
        img, lab = volumes(c)
        save(img, root / "imagesTr" / f"case{c}_0000.nii.gz", zooms)
        save(lab, root / "labelsTr" / f"case{c}.nii.gz", zooms)
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": labels or {"background": 0, "liver": 1, "tumour": 2},
        "numTraining": n, "file_ending": ".nii.gz"}))
    return root


def test_decathlon_layout_reads_as_slices_along_the_thick_axis(tmp_path):
    ds = read_dataset(decathlon(tmp_path / "Dataset001"))
    assert ds.format == "nifti" and ds.categories == ["liver", "tumour"]
    assert len(ds) == 3 * SHAPE[2]  # z has 5 mm voxels: nnU-Net's 2D axis
    rec = ds.image("case1/slice_002")
    assert (rec.width, rec.height) == (SHAPE[0], SHAPE[1]) and rec.group == "volume:case1"
    assert ds.spacing_of(rec.id) == pytest.approx((0.7, 0.8))  # rows along y, columns along x
    img, lab = volumes(1)
    assert np.array_equal(rec.pixels().array, img[:, :, 2].T)  # HU kept
    assert np.array_equal(semantic_label_map(rec, ds), lab[:, :, 2].T)
    assert rec.is_deep()


def test_decathlon_v1_labels_and_an_isotropic_volume_slice_the_last_axis(tmp_path):
    root = decathlon(tmp_path / "Task03", n=1, labels={"0": "background", "1": "liver", "2": "tumour"},
                     zooms=(1.0, 1.0, 1.0))
    ds = read_dataset(root, "nifti")
    assert ds.categories == ["liver", "tumour"] and len(ds) == SHAPE[2]


def test_the_axis_follows_the_lowest_resolution(tmp_path):
    root = decathlon(tmp_path / "d", n=1, zooms=(3.0, 0.5, 0.5))  # sagittal-thick
    ds = read_dataset(root)
    assert len(ds) == SHAPE[0]
    rec = ds.images[5]
    assert (rec.height, rec.width) == (SHAPE[2], SHAPE[1])


def test_image_and_label_pairs(tmp_path):
    for c in ("p1", "p2"):
        img, lab = volumes(3)
        save(img, tmp_path / "data" / c / "image.nii.gz")
        save((lab > 0).astype(np.uint8), tmp_path / "data" / c / "label.nii.gz")
    ds = read_dataset(tmp_path / "data")
    assert ds.format == "nifti" and len(ds) == 2 * SHAPE[2]
    assert {r.group for r in ds.images} == {"volume:p1", "volume:p2"}


def test_a_label_volume_of_another_shape_is_one_line(tmp_path):
    root = decathlon(tmp_path / "d", n=1)
    save(np.zeros((20, 16, 5), np.uint8), root / "labelsTr" / "case0.nii.gz")
    with pytest.raises(DataError, match=r"case0.nii.gz: is 20x16x5 voxels but its image case0_0000.nii.gz is 20x16x6"):
        read_dataset(root)


def test_a_label_value_missing_from_dataset_json_is_one_line(tmp_path):
    root = decathlon(tmp_path / "d", n=1, labels={"background": 0, "liver": 1})
    with pytest.raises(DataError, match=r"case0.nii.gz: holds the label value 2, which .*dataset.json does not name \(it names 0, 1\)"):
        read_dataset(root)


def test_a_truncated_volume_is_one_line(tmp_path):
    root = decathlon(tmp_path / "d", n=1)
    f = root / "imagesTr" / "case0_0000.nii.gz"
    whole = f.read_bytes()
    f.write_bytes(whole[: len(whole) // 2])
    ds = read_dataset(root)  # the header is whole: the pixels fail when asked for
    assert ds.images[0].pixels().array.shape == (SHAPE[1], SHAPE[0])  # the first slice is all there
    with pytest.raises(DataError, match="case0_0000.nii.gz#5: NIfTI data does not decode"):
        ds.images[-1].pixels()
    f.write_bytes(whole[:20])
    with pytest.raises(DataError, match="case0_0000.nii.gz: is not a readable NIfTI file"):
        read_dataset(root)


@pytest.mark.slow
def test_unet_on_a_decathlon_folder_reports_hd95_in_mm(tmp_path):
    from test_dicom import train_unet

    decathlon(tmp_path / "data", n=4)
    run = train_unet(tmp_path / "data", tmp_path / "runs", "empty_slices=0.5")
    metrics = json.loads((run / "metrics.json").read_text())
    assert "millimetres" in json.dumps(metrics)
    choices = json.loads((run / "manifest.json").read_text())["choices"]
    assert choices["intensity"]["value"].startswith("percentile:") and "left out" in choices["empty_slices"]["reason"]


def test_empty_slices_thins_only_the_training_images_without_foreground(tmp_path):
    from zoo.config import BackendConfig, resolve_config
    from zoo.data.empty_images import thin_empty_images
    from zoo.data.split import Split
    from zoo.errors import ConfigError

    ds = read_dataset(decathlon(tmp_path / "d", n=4))
    empty = {r.id for r in ds.images if not r.instances}
    assert len(empty) == 4 * 3  # slices 0, 4, 5 of each volume
    val = [r.id for r in ds.images if r.id.startswith("case3/")]
    split = Split("semantic-seg", 0, 0.25, 0.0, "h", train=[r.id for r in ds.images if r.id not in val], val=val)
    thinned, dropped = thin_empty_images(split, ds, 1 / 3, seed=0)
    assert dropped == 6 and len(set(thinned.train) & empty) == 3
    assert set(thinned.train) - empty == set(split.train) - empty and thinned.val == val
    assert thin_empty_images(split, ds, 1 / 3, seed=0)[0].train == thinned.train  # seeded
    assert thin_empty_images(split, ds, 1.0, seed=0) == (split, 0)
    c = resolve_config(BackendConfig, backend="x", task="semantic-seg", sets=["empty_slices=0.1"])
    assert c.empty_slices == 0.1
    with pytest.raises(ConfigError, match="empty_slices"):
        resolve_config(BackendConfig, backend="x", task="semantic-seg", sets=["empty_slices=0"])
