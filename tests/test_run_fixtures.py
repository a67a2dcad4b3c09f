"""The run pipeline on real annotation folders written by other people (read-only)."""

from __future__ import annotations

import hashlib
import json

import pytest
from flat_options import run_options
import toy_backend

from zoo.pipeline.run import execute

pytestmark = pytest.mark.fixtures


def _digest(folder):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def registry():
    return toy_backend.registry()


def test_voc_train_test_folders_become_the_split(tmp_path, real_fixtures, registry):
    data = real_fixtures / "voc" / "Tony607_object_detection_demo"
    before = _digest(data)
    result = execute(run_options(task="detect", backend="oracle", registry=registry, quiet=True, data=data,
                                 flags={"device": "cpu"}, out=tmp_path / "runs"))
    split = json.loads((result.run_dir / "split.json").read_text())
    assert split["source"] == "data"
    assert split["val"] and all(i.startswith("test/") for i in split["val"])
    assert all(i.startswith("train/") for i in split["train"])
    assert result.metrics["AP"] == pytest.approx(1.0)
    assert _digest(data) == before


def test_labelme_groups_and_ignore_regions_score_one_as_ground_truth(tmp_path, real_fixtures, registry):
    # group_id-joined polygons, an __ignore__ region and a vertex past the image edge: the
    # ground truth fed back as predictions must still score 1.0 through the whole pipeline.
    data = real_fixtures / "labelme" / "instance_segmentation"
    before = _digest(data)
    result = execute(run_options(task="instance-seg", backend="oracle", registry=registry, quiet=True, data=data,
                                 val=0.5, flags={"device": "cpu"}, out=tmp_path / "runs"))
    assert result.metrics["AP"] == pytest.approx(1.0)
    gt = json.loads((result.run_dir / "data/val_coco.json").read_text())
    assert len(gt["images"]) == len(json.loads((result.run_dir / "split.json").read_text())["val"])
    assert _digest(data) == before


def _one_pixel_changed(doc: dict) -> dict:
    """A labelme document whose imageData differs from ``doc``'s in one pixel (exact copies are
    duplicates: zoo keeps them on one side of a split, so two copies could not be split)."""
    import base64
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(doc["imageData"]))).convert("RGB")
    img.putpixel((0, 0), tuple(255 - v for v in img.getpixel((0, 0))))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return {**doc, "imageData": base64.b64encode(buf.getvalue()).decode("ascii")}


def test_embedded_image_data_gets_a_viewable_labelme_prediction(tmp_path, real_fixtures, registry):
    src = next((real_fixtures / "labelme" / "tutorial").glob("*.json"))  # pixels only as base64 imageData
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.json").write_bytes(src.read_bytes())  # one to train on, one to predict: the second
    (data / "b.json").write_text(json.dumps(_one_pixel_changed(json.loads(src.read_text()))))  # not a duplicate
    result = execute(run_options(task="detect", backend="toy", registry=registry, quiet=True, data=data,
                                 flags={"device": "cpu"}, out=tmp_path / "runs"))
    docs = list((result.run_dir / "predictions/labelme").rglob("*.json"))
    assert len(docs) == 1
    doc = json.loads(docs[0].read_text())
    assert (docs[0].parent / doc["imagePath"]).is_file()
