"""Every built-in reader passes the readers' kit (zoo.testing.check_reader) on a sample of its
format, and the kit catches a reader that breaks its rules."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from zoo.data.reader_kit import READER_CHECKS, ReaderCase, check_deterministic
from zoo.testing import check_reader


def _written(fmt: str, task: str | None):
    def make(demo, out):
        from zoo.data.reading import read_dataset
        from zoo.registry import get_registry

        get_registry().writer(fmt).load()(read_dataset(demo, "labelme"), out, task=task)
    return make


def _labelme(demo, out):
    shutil.copytree(demo, out)


def _folders(demo, out):
    for k, img in enumerate(sorted(demo.glob("*.jpg"))):
        (out / ("benign", "malignant")[k % 2]).mkdir(parents=True, exist_ok=True)
        shutil.copy(img, out / ("benign", "malignant")[k % 2] / img.name)


def _cvat(demo, out):
    (out / "images").mkdir(parents=True)
    shapes = []
    for k, img in enumerate(sorted(demo.glob("*.jpg"))):
        shutil.copy(img, out / "images" / img.name)
        shapes.append(f'<image id="{k}" name="{img.name}" width="48" height="48">'
                      f'<box label="cell" xtl="{2 + k}" ytl="3" xbr="20" ybr="{15 + k}" z_order="0"/>'
                      '<polygon label="wbc" points="25,25;40,25;40,40" z_order="0"/></image>')
    (out / "annotations.xml").write_text("<annotations><version>1.1</version>" + "".join(shapes) + "</annotations>")


def _objects(demo, out):
    for k, img in enumerate(sorted(demo.glob("*.jpg"))):
        rid = f"id{k}"
        (out / rid / "images").mkdir(parents=True)
        (out / rid / "masks").mkdir()
        Image.open(img).save(out / rid / "images" / f"{rid}.png")
        m = np.zeros((48, 48), np.uint8)
        m[5 + k:20, 4:30] = 255
        Image.fromarray(m).save(out / rid / "masks" / "a.png")


def _nifti(demo, out):
    """The nnU-Net / Decathlon raw layout: two CT-like volumes and their label volumes."""
    import json

    nib = pytest.importorskip("nibabel")
    for c in range(2):
        img = np.random.default_rng(c).integers(-1000, 1000, (20, 16, 4)).astype(np.int16)
        lab = np.zeros(img.shape, np.uint8)
        lab[4:10, 3:9, 1:3] = 1
        for folder, name, a in (("imagesTr", f"case{c}_0000.nii.gz", img), ("labelsTr", f"case{c}.nii.gz", lab)):
            (out / folder).mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(a, np.diag([0.8, 0.7, 5.0, 1.0])), out / folder / name)
    (out / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1},
                                                  "numTraining": 2, "file_ending": ".nii.gz"}))


SAMPLES = {
    "labelme": _labelme,
    "coco": _written("coco", "instance-seg"),
    "yolo": _written("yolo", "detect"),
    "voc": _written("voc", "detect"),
    "masks": _written("masks", "semantic-seg"),
    "folders": _folders,
    "cvat": _cvat,
    "objects": _objects,
    "nifti": _nifti,
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from zoo.data.demo import write_demo

    out = tmp_path_factory.mktemp("demo")
    write_demo(out, images=4, size=48, seed=0)
    return out


def test_every_registered_reader_has_a_sample_here():
    from zoo.registry import get_registry

    assert set(SAMPLES) == set(get_registry().readers)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_built_in_reader_passes_the_kit(name, demo, tmp_path):
    sample = tmp_path / "sample"
    SAMPLES[name](demo, sample)
    check_reader(name, sample, tmp_path / "kit")


def test_the_kit_catches_a_reader_that_breaks_the_rules(demo, tmp_path, monkeypatch):
    import zoo.adapters.folders as folders

    sample = tmp_path / "sample"
    _folders(demo, sample)
    calls = iter(range(1000))
    real = folders.read

    def shuffling(path, *, labels=None):  # a new order each read: not deterministic
        ds = real(path, labels=labels)
        if next(calls) % 2:
            ds.images.reverse()
        return ds

    monkeypatch.setattr(folders, "read", shuffling)
    with pytest.raises(AssertionError, match="reader 'folders' orders the images differently"):
        check_deterministic(ReaderCase("folders", sample, tmp_path / "kit"))
    monkeypatch.setattr(folders, "sniff", lambda path: 0.99)  # claims every folder
    with pytest.raises(AssertionError, match="check_declines_other_formats: reader 'folders' claims zoo's own"):
        check_reader("folders", sample, tmp_path / "kit2")
    assert len(READER_CHECKS) == 7
