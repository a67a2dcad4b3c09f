"""Issue 27's smaller items, each proved: report.md shows hostile label names as text, the
manifest's command pastes back into a shell, alexnet's smallest imgsz is said before training."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import toy_backend

import zoo.registry

HOSTILE = "<img src=x onerror=alert(1)>[x](javascript:alert(1))|`"


@pytest.fixture
def hostile_labels(tiny_demo, tmp_path) -> Path:
    """The demo with the category 'wbc' renamed to markup."""
    data = tmp_path / "data"
    shutil.copytree(tiny_demo, data)
    for f in [*data.glob("*.json"), data / "zoo.yaml"]:
        text = f.read_text()
        f.write_text(text.replace("wbc", json.dumps(HOSTILE)[1:-1] if f.suffix == ".json" else json.dumps(HOSTILE)))
    return data


def test_report_md_shows_label_names_as_text_and_the_command_pastes_back(hostile_labels, tmp_path, zoo_cli,
                                                                          monkeypatch):
    reg = toy_backend.registry()
    monkeypatch.setattr(zoo.registry, "get_registry", lambda: reg)
    argv = ["run", "--task", "detect", "--backend", "toy", "--data", str(hostile_labels), "--out",
            str(tmp_path / "runs"), "--name", "my run; rm -rf ~", "--device", "cpu"]
    monkeypatch.setattr(sys, "argv", ["zoo", *argv])
    code, err = zoo_cli(argv)
    assert code == 0, err
    run = tmp_path / "runs" / "my run; rm -rf ~"
    report = (run / "report.md").read_text()
    assert "<img" not in report and "[x](" not in report  # no tag, no link: ...
    assert "&lt;img src=x onerror=alert(1)>\\[x\\](javascript:alert(1))\\|\\`" in report  # shown, escaped
    command = json.loads((run / "manifest.json").read_text())["command"]
    assert shlex.split(command) == ["zoo", *argv]


@pytest.mark.slow
def test_alexnet_at_a_too_small_imgsz_is_refused_before_training(tiny_demo, tmp_path, zoo_cli):
    code, err = zoo_cli(["run", "--task", "classify", "--backend", "alexnet", "--data", tiny_demo, "--out",
                      tmp_path / "runs", "--device", "cpu", "--epochs", "1", "--imgsz", "32"])
    lines = [line for line in err.splitlines() if line.startswith("zoo: error:")]
    assert code == 2 and len(lines) == 1 and "alexnet needs imgsz >= 63" in lines[0] and "Traceback" not in err
    assert not (tmp_path / "runs" / "alexnet-classify" / "checkpoint" / "last.pt").exists()


def test_convert_repairs_backwards_coco_boxes_and_drops_null_ones_without_geometry(tmp_path):
    """adapters/POLICY.md: a bbox of negative width/height turned round, bbox null taken from
    the segmentation, an annotation with neither dropped; each with a warning."""
    from PIL import Image

    from zoo.pipeline.convert import convert_folder

    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (64, 64)).save(src / "a.png")
    square = [[20, 20, 40, 20, 40, 40, 20, 40]]
    anns = [{"bbox": [40, 40, -20, -20], "segmentation": square}, {"bbox": None, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]},
            {"bbox": [5, 5, -3, 4]}, {"bbox": None}]
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 64}],
            "categories": [{"id": 1, "name": "cell"}],
            "annotations": [{"id": k + 1, "image_id": 1, "category_id": 1, "area": 1, "iscrowd": 0, **a}
                            for k, a in enumerate(anns)]}
    (src / "annotations.json").write_text(json.dumps(coco))
    convert_folder(src, to="coco", out=tmp_path / "out")
    written = json.loads((tmp_path / "out" / "annotations.json").read_text())["annotations"]
    assert [a["bbox"] for a in written] == [[20, 20, 20, 20], [0.0, 0.0, 10.0, 10.0], [2, 5, 3, 4]]
    from zoo.data.reading import read_dataset

    warnings = " ".join(str(w) for w in read_dataset(src).warnings)
    assert "negative width or height" in warnings and "bbox is null" in warnings
