"""`zoo run` / `zoo predict` / `zoo compare` end to end with real, cheap backends (one epoch
on the tiny demo; learning is not expected, the contract is)."""

from __future__ import annotations

import csv
import json

import pytest

from zoo.cli import main
from zoo.registry import get_registry

pytestmark = pytest.mark.slow


def _needs(*backends):
    reg = get_registry()
    for b in backends:
        if b not in reg.backends or not reg.backends[b].installed:
            pytest.skip(f"backend {b} not available")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("YOLO_OFFLINE", "1")


def test_unet_run_then_predict(tmp_path, tiny_demo, predict_new_images):
    _needs("unet")
    out = tmp_path / "runs"
    main(["run", "--task", "semantic-seg", "--backend", "unet", "--data", str(tiny_demo), "--epochs", "1",
          "--imgsz", "64", "--batch", "4", "--device", "cpu", "--out", str(out)])
    run = out / "unet-semantic-seg"
    m = json.loads((run / "manifest.json").read_text())
    assert m["status"] == "finished" and m["parameters"] > 1000
    assert "segmentation_models_pytorch" in " ".join(m["versions"]) or len(m["versions"]) > 4
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["mIoU"] <= 1.0 and set(metrics["per_class"]) == {"_background_", "platelet", "rbc", "wbc"}
    assert any((run / "checkpoint").iterdir())
    val = json.loads((run / "split.json").read_text())["val"]
    assert sorted(p.stem for p in (run / "predictions/masks").glob("*.png")) == sorted(val)
    assert (run / "plots").is_dir() and "mIoU" in (run / "report.md").read_text()

    # the checkpoint reloads (Backend.load) and predicts new images as labelme JSON
    docs = predict_new_images(run)
    assert len(docs) == 2 and len(list((tmp_path / "pred").glob("*.jpg"))) == 2
    doc = json.loads(docs[0].read_text())
    assert doc["imageWidth"] == 96 and doc["imagePath"] == docs[0].stem + ".jpg"


@pytest.mark.parametrize(
    ("task", "backends", "imgsz"),
    [("classify", ["mobilenet_v3_small", "resnet18"], "32"), ("detect", ["yolov8", "faster-rcnn"], "64")],
)
def test_compare_two_real_backends(tmp_path, tiny_demo, task, backends, imgsz):
    _needs(*backends)
    out = tmp_path / "runs"
    main(["compare", "--task", task, "--backends", ",".join(backends), "--data", str(tiny_demo),
          "--epochs", "1", "--imgsz", imgsz, "--batch", "4", "--device", "cpu", "--out", str(out)])
    folder = out / "compare" / task
    with open(folder / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["backend"] for r in rows) == sorted(backends)
    assert all(r["status"] == "trained" and not r["error"] for r in rows), rows
    for r in rows:
        run = out / f"{r['backend']}-{task}"
        metrics = json.loads((run / "metrics.json").read_text())
        scores = {k: v for k, v in metrics.items() if isinstance(v, float)}
        assert metrics["main"] in scores
        for k, v in scores.items():
            assert float(r[k]) == pytest.approx(v, rel=1e-5), k
        manifest = json.loads((run / "manifest.json").read_text())
        assert int(r["parameters"]) == manifest["parameters"]
        assert float(r["train_s"]) == pytest.approx(manifest["timings"]["fit"])
        assert (run / "split.json").read_text() == (folder / "split.json").read_text()
    assert (folder / "leaderboard.md").is_file() and (folder / "scores.png").is_file()
    assert (folder / "samples.png").is_file()
    assert (folder / "pr_curves.png").is_file() == (task == "detect")
