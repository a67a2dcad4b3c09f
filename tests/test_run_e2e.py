"""`zoo run` / `zoo predict` / `zoo compare` end to end with real, cheap backends (one epoch
on the tiny demo; learning is not expected, the contract is)."""

from __future__ import annotations

import csv
import json
import os

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


def test_unet_run_then_predict(tmp_path, tiny_demo):
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
    images = tmp_path / "new"
    images.mkdir()
    for p in sorted(tiny_demo.glob("*.jpg"))[:2]:
        (images / p.name).write_bytes(p.read_bytes())
    main(["predict", "--run", str(run), str(images), "--out", str(tmp_path / "pred"), "--device", "cpu"])
    docs = sorted((tmp_path / "pred").glob("*.json"))
    assert len(docs) == 2 and len(list((tmp_path / "pred").glob("*.jpg"))) == 2
    doc = json.loads(docs[0].read_text())
    assert doc["imageWidth"] == 96 and doc["imagePath"] == docs[0].stem + ".jpg"


def test_compare_two_real_classifiers(tmp_path, tiny_demo):
    _needs("mobilenet_v3_small", "resnet18")
    out = tmp_path / "runs"
    main(["compare", "--task", "classify", "--backends", "mobilenet_v3_small,resnet18", "--data", str(tiny_demo),
          "--epochs", "1", "--imgsz", "32", "--batch", "4", "--device", "cpu", "--out", str(out)])
    with open(out / "compare/classify/leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["backend"] for r in rows) == ["mobilenet_v3_small", "resnet18"]
    for r in rows:
        metrics = json.loads((out / f"{r['backend']}-classify/metrics.json").read_text())
        for k in ("accuracy", "precision", "recall", "f1"):
            assert float(r[k]) == pytest.approx(metrics[k], rel=1e-5)
        manifest = json.loads((out / f"{r['backend']}-classify/manifest.json").read_text())
        assert int(r["parameters"]) == manifest["parameters"] and float(r["train_s"]) == pytest.approx(manifest["timings"]["fit"])
    splits = {(out / f"{r['backend']}-classify/split.json").read_text() for r in rows}
    assert splits == {(out / "compare/classify/split.json").read_text()}
