"""labelme -> COCO: the streaming converter writes exactly what to_coco(read_dataset()) gives."""

from __future__ import annotations

import json
import shutil

import pytest

from zoo.evaluation.ground_truth import to_coco
from zoo.pipeline.convert import convert_folder
from zoo.data.reading import read_dataset


def _strip(coco: dict) -> dict:
    coco = json.loads(json.dumps(coco))
    coco.pop("info", None)
    return coco


@pytest.mark.parametrize("geometry", ["exact", "pixels"])
def test_streaming_equals_to_coco_on_demo(tiny_demo, tmp_path, geometry):
    convert_folder(tiny_demo, to="coco", out=tmp_path / "c", geometry=geometry, copy_images=False)
    ours = json.loads((tmp_path / "c" / "annotations.json").read_text())
    ref = to_coco(read_dataset(tiny_demo), geometry=geometry)
    assert _strip(ours) == _strip(ref)
    assert ours["categories"][0]["keypoints"] and ours["annotations"][0]["num_keypoints"] > 0


def test_streaming_equals_to_coco_with_labels_and_ignore(real_fixtures, tmp_path):
    src = real_fixtures / "labelme" / "instance_segmentation"
    ds = convert_folder(src, to="coco", out=tmp_path / "c", labels=src / "labels.txt")
    ours = json.loads((tmp_path / "c" / "annotations.json").read_text())
    ref = to_coco(read_dataset(src, labels=src / "labels.txt"))
    for im in ref["images"]:
        im["file_name"] = im["file_name"]  # both copy images to images/<id><suffix>
    assert _strip(ours) == _strip(ref)
    assert sorted((tmp_path / "c" / "images").iterdir())[0].name == "2011_000003.jpg"
    assert len(ds.warnings) == 2


def test_labels_not_listed_are_dropped_when_streaming(tmp_path, tiny_demo):
    src = tmp_path / "demo"
    shutil.copytree(tiny_demo, src)
    (src / "zoo.yaml").unlink()
    lab = tmp_path / "labels.txt"
    lab.write_text("wbc\nrbc\n")
    ds = convert_folder(src, to="coco", out=tmp_path / "c", labels=lab, copy_images=False)
    coco = json.loads((tmp_path / "c" / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["wbc", "rbc"]
    assert {a["category_id"] for a in coco["annotations"]} == {1, 2}
    assert any("'platelet'" in w.reason for w in ds.warnings)
    ref = to_coco(read_dataset(src, labels=lab))
    assert _strip(coco) == _strip(ref)
