"""`zoo run --backend yolov8` end to end, one per task: a complete run folder from one
epoch on the tiny demo (learning is not expected; the folder and its contents are)."""

from __future__ import annotations

import importlib.util

import json

import pytest

if importlib.util.find_spec("ultralytics") is None:  # find, not import: importing it unprepared probes the network
    pytest.skip("ultralytics is not installed", allow_module_level=True)

from zoo.cli import main  # noqa: E402

pytestmark = pytest.mark.slow

MAIN = {"detect": "AP", "instance-seg": "AP", "keypoint": "AP", "classify": "accuracy", "semantic-seg": "mIoU"}


@pytest.mark.parametrize("task", list(MAIN))
def test_run_leaves_a_complete_folder(task, tmp_path, tiny_demo, monkeypatch, predict_new_images):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs"
    main(["run", "--task", task, "--backend", "yolov8", "--data", str(tiny_demo), "--epochs", "1",
          "--imgsz", "64", "--batch", "4", "--device", "cpu", "--out", str(out), "--set", "model=n",
          "--select", "best" if task == "detect" else "last"])
    run = out / f"yolov8-{task}"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert manifest["versions"].get("ultralytics")
    assert manifest["parameters"] > 100_000
    own = manifest["framework_metrics"]
    assert "for the log only" in own["note"]
    chosen = manifest["selection"]
    if task == "detect":  # ultralytics validated on the selection split, and only there
        assert "ultralytics_val" in own and chosen["times_scored"] == 1 and chosen["chosen_epoch"] == 1
        assert chosen["selection_images"] == len(json.loads((run / "split.json").read_text())["selection"]) > 0
        assert "ultralytics" in chosen["criterion"]
    else:  # --select last: nothing scored during training, no selection split
        assert "ultralytics_val_on_train_images" in own and chosen["times_scored"] == 0
        assert chosen["selection_images"] == 0 and chosen["chosen_epoch"] == 1
    assert (run / "checkpoint" / "model.pt").is_file()
    assert (run / "config.yaml").read_text().count("model: n") == 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics[MAIN[task]] <= 1.0
    val = json.loads((run / "split.json").read_text())["val"]
    assert len(val) >= 2
    if task not in ("classify", "semantic-seg"):
        results = json.loads((run / "predictions" / "coco_results.json").read_text())
        assert results and {"image_id", "category_id", "bbox", "score"} <= set(results[0])
        if task == "instance-seg":
            assert "segmentation" in results[0]
        if task == "keypoint":
            assert len(results[0]["keypoints"]) == 3 * 4
    assert (run / "report.md").is_file()
    # ultralytics wrote nowhere but the run folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]

    if task in ("detect", "classify"):
        # the checkpoint reloads and labels new images as labelme JSON
        docs = predict_new_images(run)
        assert len(docs) == 2
        doc = json.loads(docs[0].read_text())
        assert doc["imageWidth"] == 96 and doc["imagePath"] == docs[0].stem + ".jpg"
