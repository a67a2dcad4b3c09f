"""Fold ensembles (zoo.pipeline.ensemble): the fusion rules on constructed predictions, K
identical models giving the single model's predictions exactly, and `zoo compare --folds K
--test F --ensemble` / `zoo predict --run COMPARE_DIR --backend B --ensemble` scoring the
ensemble on the test split only, beside the single folds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flat_options import run_options

from zoo.cli import main
from zoo.dataset import Dataset, ImageRecord
from zoo.errors import ZooError
from zoo.pipeline.ensemble import Ensemble, fuse_classify, fuse_semantic, mean_probabilities
from zoo.predictions import ClassPrediction


class Constant:
    """A member that answers every image with fixed probabilities."""

    def __init__(self, probs):
        self.probs = np.asarray(probs, np.float32)

    def predict_probabilities(self, images):
        return (self.probs for _ in images)

    def predict(self, images):
        return (ClassPrediction(r.id, int(self.probs.argmax()), [float(v) for v in self.probs]) for r in images)


def _images(n=2):
    return [ImageRecord(id=f"im{i}", width=2, height=1) for i in range(n)]


def test_semantic_rule_is_the_mean_of_softmax_then_argmax():
    # per pixel (background, a, b): one member sure of "a" on the left pixel, two lean to "b"
    sure = Constant([[[0.0, 0.1]], [[0.9, 0.1]], [[0.1, 0.8]]])
    lean = Constant([[[0.1, 0.1]], [[0.3, 0.2]], [[0.6, 0.7]]])
    meta = Dataset(categories=["a", "b"])
    preds = list(fuse_semantic([sure, lean, lean], _images(), meta))
    # left: a = (0.9 + 0.3 + 0.3) / 3 = 0.5 beats b = (0.1 + 0.6 + 0.6) / 3 = 0.433 (a majority vote says b)
    assert [p.label_map.tolist() for p in preds] == [[[1, 2]], [[1, 2]]]


def test_classify_rule_is_the_mean_of_probabilities():
    members = [Constant([0.7, 0.3, 0.0]), Constant([0.0, 0.4, 0.6]), Constant([0.0, 0.45, 0.55])]
    preds = list(fuse_classify(members, _images(1), Dataset(classes=["x", "y", "z"])))
    assert preds[0].label == 2 and preds[0].scores == pytest.approx([0.7 / 3, 1.15 / 3, 1.15 / 3])
    # no probabilities: no mean to take
    class Bare(Constant):
        def predict(self, images):
            return (ClassPrediction(r.id, 0) for r in images)

    with pytest.raises(ZooError, match="averages class probabilities"):
        list(fuse_classify([Bare([1.0]), Bare([1.0])], _images(1), Dataset(classes=["x"])))


def test_mean_of_identical_members_is_the_member_exactly():
    p = np.random.default_rng(0).dirichlet(np.ones(4), size=(5, 7)).astype(np.float32).transpose(2, 0, 1)
    for k in (2, 3, 5):
        mean = mean_probabilities([p] * k)
        assert np.array_equal(mean.argmax(0), p.argmax(0)) and np.allclose(mean, p, rtol=0, atol=1e-7)


# -- with real models ----------------------------------------------------------------------------


def _train(tmp_path, data, backend, task, imgsz):
    from zoo.pipeline.run import execute

    return execute(run_options(task=task, backend=backend, quiet=True, data=data,
                               flags={"epochs": 1, "batch": 4, "imgsz": imgsz, "device": "cpu"},
                               out=tmp_path / "runs")).run_dir


@pytest.mark.slow
@pytest.mark.parametrize("backend,task,imgsz", [("unet", "semantic-seg", 64), ("resnet18", "classify", 32)])
def test_k_identical_models_predict_as_the_single_model(backend, task, imgsz, tmp_path, tiny_demo):
    from zoo.pipeline.predict import load_backend
    from zoo.data.reading import read_dataset

    run = _train(tmp_path, tiny_demo, backend, task, imgsz)
    model, task_, meta, _ = load_backend(run, "cpu")
    images = read_dataset(tiny_demo).images[:5]
    single = list(model.predict(images))
    from zoo.pipeline.ensemble import Member

    fused = list(Ensemble([Member(model)] * 3, task_, meta).predict(images))
    for a, b in zip(single, fused):
        if task == "semantic-seg":
            assert np.array_equal(a.label_map, b.label_map)
        else:
            assert a.label == b.label and b.scores == pytest.approx(a.scores, abs=1e-7)


@pytest.mark.slow
def test_compare_ensemble_is_scored_on_test_only_beside_the_single_folds(tmp_path, tiny_demo, capsys):
    out = tmp_path / "runs"
    main(["compare", "--task", "classify", "--backends", "resnet18", "--data", str(tiny_demo), "--folds", "2",
          "--test", "0.25", "--ensemble", "--epochs", "1", "--imgsz", "32", "--batch", "4", "--device", "cpu",
          "--out", str(out), "--samples", "0"])
    folder = out / "compare" / "classify"
    board = json.loads((folder / "compare.json").read_text())
    (ens,) = board["ensembles"]
    assert ens["k"] == 2 and ens["split"] == "test" and "mean of the K models' class probabilities" in ens["rule"]
    test_ids = json.loads((folder / "fold-0" / "split.json").read_text())["test"]
    assert test_ids == json.loads((folder / "fold-1" / "split.json").read_text())["test"] and len(test_ids) == 3
    for i in (0, 1):  # the test images are in no fold's train or val
        split = json.loads((folder / f"fold-{i}" / "split.json").read_text())
        assert not set(test_ids) & set(split["train"] + split["val"] + split.get("selection", []))
    # the ensemble predicted the test images, and only them
    rows = (folder / "ensemble" / "resnet18" / "predictions" / "test" / "predictions.csv").read_text().splitlines()
    assert sorted(r.split(",")[0] for r in rows[1:]) == sorted(test_ids)
    metrics = json.loads((folder / "ensemble" / "resnet18" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] == ens["ensemble"] and "ensemble" in metrics["test"]["conventions"]
    # the single folds: each run's own test score
    singles = [json.loads((Path(r) / "metrics.json").read_text())["test"]["accuracy"] for r in ens["members"]]
    assert ens["singles"] == singles and ens["best_single"] == max(singles)
    assert ens["verdict"]["difference"] == pytest.approx(ens["ensemble"] - max(singles))
    assert "ensemble of 2" in (folder / "leaderboard.md").read_text()
    # zoo predict --ensemble scores the same, and predicts new images with it
    capsys.readouterr()
    main(["predict", "--run", str(folder), "--backend", "resnet18", "--ensemble", "--device", "cpu",
          str(tiny_demo / "smear_000.jpg"), "--out", str(tmp_path / "pred")])
    said = capsys.readouterr().out
    assert f"ensemble of 2 accuracy {ens['ensemble']:.3f} on test" in " ".join(said.split())
    assert (tmp_path / "pred" / "smear_000.json").is_file()
    # the winner by name is the fold ensemble: exported as K graphs and the rule, with parity on test
    main(["export", "--run", str(folder)])
    said = capsys.readouterr()
    assert "using its winner, resnet18" in " ".join((said.out + said.err).split())
    card = json.loads((folder / "export" / "onnx" / "model.json").read_text())
    assert card["ensemble"]["k"] == 2 and card["ensemble"]["rule"] == ens["rule"]
    assert card["parity"]["split"] == "test" and card["parity"]["images"] == 3 and card["parity"]["ok"]
    assert card["parity"]["torch"] == pytest.approx(ens["ensemble"], abs=1e-9)
    for i, member in enumerate(card["ensemble"]["members"]):
        own = json.loads((folder / "export" / "onnx" / member / "model.json").read_text())
        assert own["parity"]["split"] == "val" and own["parity"]["ok"] and own["run"] == str(
            Path(ens["members"][i]).resolve())
    # the ONNX ensemble predicts the test images as the torch one does
    onnx_rows = (folder / "export" / "onnx" / "predictions" / "test" / "predictions.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in onnx_rows] == [r.split(",")[:2] for r in rows]
    # zoo predict --ensemble --engine onnx: the exported members predict new images as the torch ones did
    main(["predict", "--run", str(folder), "--backend", "resnet18", "--ensemble", "--engine", "onnx", "--device",
          "cpu", str(tiny_demo / "smear_000.jpg"), "--out", str(tmp_path / "pred-onnx")])
    torch_doc = json.loads((tmp_path / "pred" / "smear_000.json").read_text())
    onnx_doc = json.loads((tmp_path / "pred-onnx" / "smear_000.json").read_text())
    assert onnx_doc["flags"] == torch_doc["flags"] and any(torch_doc["flags"].values())


def test_ensemble_refusals_are_one_line(tmp_path, tiny_demo, capsys):
    def fails(argv):
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and len(err.splitlines()) == 1
        return err

    assert "use it with --folds K --test F" in fails(
        ["compare", "--task", "classify", "--backends", "resnet18", "--data", str(tiny_demo), "--ensemble",
         "--folds", "2", "--out", str(tmp_path / "runs")])
    assert "not a zoo compare folder" in fails(
        ["predict", "--run", str(tmp_path), "--backend", "resnet18", "--ensemble"])
    assert "--backend B" in fails(["predict", "--run", str(tmp_path), "--ensemble"])



# -- detect, instance-seg, keypoint: weighted boxes fusion ---------------------------------------


def _rle(mask):
    from zoo.data.raster import mask_to_rle

    return mask_to_rle(np.asarray(mask, bool))


def test_boxes_fuse_by_weighted_boxes_fusion_and_masks_and_keypoints_by_their_members():
    from zoo.pipeline.fusion import fuse_image
    from zoo.predictions import Detection, InstancePredictions

    record = ImageRecord(id="im", width=100, height=50)
    left, empty, whole = np.zeros((50, 100)), np.zeros((50, 100)), np.ones((50, 100))
    left[:, :50] = 1
    kp = lambda x: [(x, 10.0, 1.0), (x + 10, 20.0, 0.5)]  # noqa: E731
    a = Detection(0, 0.9, (10.0, 10.0, 50.0, 40.0), mask=_rle(left), keypoints=kp(10.0))
    b = Detection(0, 0.6, (12.0, 10.0, 52.0, 40.0), mask=_rle(whole), keypoints=kp(16.0))
    c = Detection(0, 0.3, (10.0, 12.0, 50.0, 42.0), mask=_rle(empty), keypoints=kp(13.0))
    lone = Detection(1, 0.8, (70.0, 5.0, 90.0, 20.0))  # one model of three found it
    preds = [InstancePredictions("im", [a, lone]), InstancePredictions("im", [b]), InstancePredictions("im", [c])]
    fused = sorted(fuse_image(record, preds).detections, key=lambda d: d.category)
    assert len(fused) == 2
    cell, single = fused
    # the box: the score-weighted mean; the score: the mean of the three
    expect = (np.array(a.bbox) * 0.9 + np.array(b.bbox) * 0.6 + np.array(c.bbox) * 0.3) / 1.8
    assert np.allclose(cell.bbox, expect, atol=1e-3) and cell.score == pytest.approx(0.6)
    assert single.score == pytest.approx(0.8 / 3) and np.allclose(single.bbox, lone.bbox, atol=1e-3)
    # the mask: where at least half of the three members' masks are (left, whole, empty: the left half)
    from zoo.data.raster import rle_to_mask

    assert np.array_equal(rle_to_mask(cell.mask), left.astype(bool))
    assert np.allclose(cell.keypoints, [(13.0, 10.0, 1.0), (23.0, 20.0, 0.5)])
    assert single.mask is None and single.keypoints is None


def test_identical_detectors_give_the_single_detections_where_boxes_do_not_overlap():
    from zoo.pipeline.fusion import fuse_image
    from zoo.predictions import Detection, InstancePredictions

    record = ImageRecord(id="im", width=64, height=48)
    dets = [Detection(0, 0.9, (1.5, 2.0, 20.0, 22.5)), Detection(0, 0.4, (30.0, 2.0, 50.0, 20.0)),
            Detection(2, 0.7, (2.0, 2.0, 20.0, 22.0))]  # another category on the same place
    fused = fuse_image(record, [InstancePredictions("im", list(dets))] * 3).detections
    key = lambda d: (d.category, d.bbox[0])  # noqa: E731
    for got, want in zip(sorted(fused, key=key), sorted(dets, key=key)):
        # ensemble-boxes computes in float32: the same to its precision
        assert got.category == want.category and got.score == pytest.approx(want.score, abs=1e-6)
        assert np.allclose(got.bbox, want.bbox, rtol=0, atol=1e-4)
    assert fuse_image(record, [InstancePredictions("im")] * 2).detections == []


@pytest.mark.slow
def test_yolov8_instance_seg_fold_ensemble_is_fused_and_scored_on_test(tmp_path, tiny_demo):
    out = tmp_path / "runs"
    main(["compare", "--task", "instance-seg", "--backends", "yolov8", "--data", str(tiny_demo), "--folds", "2",
          "--test", "0.25", "--ensemble", "--epochs", "1", "--imgsz", "64", "--batch", "4", "--device", "cpu",
          "--out", str(out), "--samples", "0"])
    folder = out / "compare" / "instance-seg"
    (ens,) = json.loads((folder / "compare.json").read_text())["ensembles"]
    assert ens["k"] == 2 and "weighted boxes fusion" in ens["rule"] and "mean of its members' masks" in ens["rule"]
    results = json.loads((folder / "ensemble" / "yolov8" / "predictions" / "test" / "coco_results.json").read_text())
    test_coco = json.loads((Path(ens["members"][0]) / "data" / "test_coco.json").read_text())
    assert results and {r["image_id"] for r in results} <= {im["id"] for im in test_coco["images"]}
    assert all("segmentation" in r for r in results)
    # zoo eval scores the ensemble's file to the number compare.json states
    main(["eval", "--task", "instance-seg", "--gt", str(Path(ens["members"][0]) / "data" / "test_coco.json"),
          "--pred", str(folder / "ensemble" / "yolov8" / "predictions" / "test" / "coco_results.json"),
          "--out", str(tmp_path / "m.json")])
    assert json.loads((tmp_path / "m.json").read_text())["AP"] == pytest.approx(ens["ensemble"], abs=1e-9)
