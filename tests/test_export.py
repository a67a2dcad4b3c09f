"""`zoo export --format onnx` and `zoo predict --engine onnx`: per exportable backend, a run
trained a step on the demo is exported, and onnxruntime's val predictions score what torch's
score (parity within 1e-3 on the main metric, raw outputs within the stated tolerance); the
ONNX predictions file is what `zoo eval` scores; the refusals are one line.

Parity does not need a good model: the predictions themselves are compared too, so a model
that finds nothing cannot pass by scoring 0 on both engines.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from flat_options import run_options
import toy_backend

from zoo.cli import main
from zoo.errors import ZooError
from zoo.pipeline.export import export_run
from zoo.pipeline.run import execute

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow

NEEDS_D2 = pytest.mark.skipif(importlib.util.find_spec("detectron2") is None,
                              reason="detectron2 is not installed (zoo install detectron2)")
#: the R-CNNs' RoI counts and keypoint head are sized for 800-px COCO images: a 64-px test
#: needs far fewer (an untrained model keeps every RoI, and the head runs once per RoI)
FEW_ROIS = {"max_detections": 20, "proposals": 50, "rois_per_image": 32}
THIN_KEYPOINT_HEAD = {"keypoint_head_layers": 2, "keypoint_head_channels": 64}
#: (backend, task, flags): one per exporting plugin, trained for one epoch on the tiny demo
EXPORTABLE = [
    ("unet", "semantic-seg", {"imgsz": 64}),
    ("segresnet", "semantic-seg", {"imgsz": 32}),
    ("resnet18", "classify", {"imgsz": 32}),
    ("yolov8", "detect", {"imgsz": 64, "model": "n"}),
    ("yolov8", "instance-seg", {"imgsz": 64, "model": "n"}),
    ("faster-rcnn", "detect", {"imgsz": 64, **FEW_ROIS}),
    ("mask-rcnn", "instance-seg", {"imgsz": 64, **FEW_ROIS}),
    ("keypoint-rcnn", "keypoint", {"imgsz": 64, **FEW_ROIS, **THIN_KEYPOINT_HEAD}),
    ("yolact", "instance-seg", {"imgsz": 64}),
    # nnU-Net plans its own patch (no imgsz): one epoch of two iterations, mirroring on
    ("nnunet", "semantic-seg", {"iterations_per_epoch": 2, "val_iterations_per_epoch": 1}),
    # score_threshold 0: a one-epoch detectron2 model scores every box low, and parity needs boxes
    pytest.param("d2-faster-rcnn", "detect", {"imgsz": 64, "score_threshold": 0.0, **FEW_ROIS}, marks=NEEDS_D2),
    pytest.param("d2-mask-rcnn", "instance-seg", {"imgsz": 64, "score_threshold": 0.0, **FEW_ROIS}, marks=NEEDS_D2),
]


def _train(tmp_path: Path, data: Path, backend: str, task: str, flags: dict, registry=None) -> Path:
    return execute(run_options(task=task, backend=backend, quiet=True, registry=registry, data=data,
                               flags={"epochs": 1, "batch": 4, "device": "cpu", **flags}, out=tmp_path / "runs")).run_dir


def _same_predictions(task: str, torch_dir: Path, onnx_dir: Path) -> None:
    """The ONNX model's val predictions against the run's own (torch) ones, file for file."""
    if task == "semantic-seg":
        from PIL import Image

        for png in sorted((torch_dir / "masks").rglob("*.png")):
            a = np.asarray(Image.open(png))
            b = np.asarray(Image.open(onnx_dir / "masks" / png.relative_to(torch_dir / "masks")))
            assert (a == b).mean() > 0.999  # an argmax tie may flip where two logits agree to 1e-6
    elif task == "classify":
        assert (torch_dir / "predictions.csv").read_text().splitlines()[1:] and [
            line.split(",")[:2] for line in (torch_dir / "predictions.csv").read_text().splitlines()] == [
            line.split(",")[:2] for line in (onnx_dir / "predictions.csv").read_text().splitlines()]
    else:
        a = json.loads((torch_dir / "coco_results.json").read_text())
        b = json.loads((onnx_dir / "coco_results.json").read_text())
        assert a, "the model found nothing: parity would prove nothing"
        assert len(a) == len(b)
        top = lambda rs: sorted(rs, key=lambda r: -r["score"])[:20]  # noqa: E731
        for x, y in zip(top(a), top(b)):
            assert x["category_id"] == y["category_id"] and x["image_id"] == y["image_id"]
            assert np.allclose(x["bbox"], y["bbox"], atol=0.05) and abs(x["score"] - y["score"]) < 1e-3


@pytest.mark.parametrize("backend,task,flags", EXPORTABLE,
                         ids=["-".join(getattr(p, "values", p)[:2]) for p in EXPORTABLE])
def test_export_has_parity_on_val_and_zoo_eval_scores_it(backend, task, flags, tmp_path, tiny_demo):
    run = _train(tmp_path, tiny_demo, backend, task, flags)
    result = export_run(run, device="cpu")
    out = run / "export" / "onnx"
    card = json.loads((out / "model.json").read_text())
    assert result.out == out and (out / "model.onnx").stat().st_size > 1000
    assert card["backend"] == backend and card["task"] == task and card["format"] == "onnx"
    assert card["parity"]["ok"] and card["parity"]["difference"] <= 1e-3
    assert card["parity"]["images"] == len(json.loads((run / "split.json").read_text())["val"])
    assert card["parity"]["raw"]["ok"] and card["parity"]["raw"]["max_abs_diff"] <= card["parity"]["raw"]["tolerance"]
    assert card["opset"] >= 7 and card["input"].get("imgsz") == flags.get("imgsz") and card["postprocess"]
    assert set(card["input"]) >= {"shape", "colour", "intensity", "mean", "std", "fit"}
    assert card["ms_per_image"]["torch"] > 0 and card["ms_per_image"]["onnxruntime"] > 0
    assert (card["classes"] if task == "classify" else card["categories"]) == ["anemia", "leukocytosis", "normal"] \
        if task == "classify" else ["platelet", "rbc", "wbc"]
    # torch's side of the parity is the run's own score
    metrics = json.loads((run / "metrics.json").read_text())
    assert card["parity"]["torch"] == pytest.approx(metrics[metrics["main"]], abs=1e-9)
    _same_predictions(task, run / "predictions", out / "predictions")
    # zoo eval scores the ONNX predictions file to the number model.json states (classify's
    # ground truth is the labelled images, which val_coco.json cannot hold: read as zoo eval reads)
    pred = out / card["scoring"]["predictions"]
    if task == "classify":
        from zoo.evaluation import evaluate
        from zoo.evaluation.results import read_predictions
        from zoo.pipeline.reread import run_images
        from zoo.tasks import get_task

        truth = run_images(run)
        scored = evaluate(get_task(task), truth, read_predictions(get_task(task), pred, truth))
    else:
        main(["eval", "--task", task, "--gt", str(run / "data" / "val_coco.json"), "--pred", str(pred),
              "--out", str(tmp_path / "m.json")])
        scored = json.loads((tmp_path / "m.json").read_text())
    assert scored[scored["main"]] == pytest.approx(card["parity"]["onnx"], abs=1e-9)


def test_predict_engine_onnx_writes_what_torch_writes(tmp_path, tiny_demo, predict_new_images):
    run = _train(tmp_path, tiny_demo, "unet", "semantic-seg", {"imgsz": 64})
    main(["export", "--run", str(run), "--dynamic", "--opset", "13"])
    card = json.loads((run / "export" / "onnx" / "model.json").read_text())
    assert card["opset"] == 13 and card["input"]["shape"] == ["batch", 3, "height", "width"]
    torch_json = [p.read_text() for p in predict_new_images(run)]
    images = tmp_path / "new"
    main(["predict", "--run", str(run), str(images), "--out", str(tmp_path / "onnx"), "--engine", "onnx",
          "--device", "cpu"])
    onnx_json = [p.read_text() for p in sorted((tmp_path / "onnx").glob("*.json"))]
    assert len(onnx_json) == 2 and onnx_json == torch_json


def test_yolact_predicts_through_onnxruntime_what_torch_predicts(tmp_path, tiny_demo, predict_new_images):
    run = _train(tmp_path, tiny_demo, "yolact", "instance-seg", {"imgsz": 64})
    main(["export", "--run", str(run)])
    card = json.loads((run / "export" / "onnx" / "model.json").read_text())
    assert card["output"]["names"] == ["conf", "loc", "coef", "proto", "anchors"]
    assert card["input"]["shape"] == ["batch", 3, 64, 64] and "NMS" in card["postprocess"]
    predict_new_images(run)  # copies two demo images to tmp_path / "new"
    written = {}
    for engine in ("torch", "onnx"):  # --conf 0: every detection of a one-epoch model is compared
        main(["predict", "--run", str(run), str(tmp_path / "new"), "--out", str(tmp_path / engine), "--engine",
              engine, "--device", "cpu", "--conf", "0"])
        written[engine] = [json.loads(p.read_text())["shapes"] for p in sorted((tmp_path / engine).glob("*.json"))]
    assert len(written["onnx"]) == 2 and written["torch"][0], "nothing found: the comparison would prove nothing"
    # the same shapes in the same order, their points to the graph's raw parity (float32 sums, ~1e-6 px)
    for torch_shapes, onnx_shapes in zip(written["torch"], written["onnx"]):
        assert [(s["label"], s["description"], s["shape_type"], len(s["points"])) for s in torch_shapes] == [
            (s["label"], s["description"], s["shape_type"], len(s["points"])) for s in onnx_shapes]
        for a, b in zip(torch_shapes, onnx_shapes):
            assert np.allclose(a["points"], b["points"], atol=1e-3)


def _fails(argv: list[str], capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_refusals_are_one_line(tmp_path, tiny_demo, capsys):
    run = _train(tmp_path, tiny_demo, "resnet18", "classify", {"imgsz": 32})
    assert "--format tflite: zoo exports onnx" in _fails(["export", "--run", str(run), "--format", "tflite"], capsys)
    assert "no ONNX export here" in _fails(
        ["predict", "--run", str(run), str(tiny_demo / "smear_000.jpg"), "--out", str(tmp_path / "p"),
         "--engine", "onnx"], capsys)
    main(["export", "--run", str(run)])
    onnx = run / "export" / "onnx" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    assert "changed since zoo export wrote it" in _fails(
        ["predict", "--run", str(run), str(tiny_demo / "smear_000.jpg"), "--out", str(tmp_path / "p"),
         "--engine", "onnx"], capsys)
    other = _train(tmp_path, tiny_demo, "resnet18", "classify", {"imgsz": 32, "seed": 1})
    assert "exported from another run" in _fails(
        ["predict", "--run", str(other), str(tiny_demo / "smear_000.jpg"), "--out", str(tmp_path / "p"),
         "--engine", "onnx", "--onnx", str(run / "export" / "onnx")], capsys)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    assert "is not a zoo export" in _fails(["export", "--run", str(run), "--out", str(tmp_path / "mine")], capsys)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "the user's"


def test_a_backend_without_export_says_so_in_one_line(tmp_path, tiny_demo):
    registry = toy_backend.registry()
    run = _train(tmp_path, tiny_demo, "oracle", "detect", {}, registry=registry)
    with pytest.raises(ZooError) as e:
        export_run(run, registry=registry)
    assert str(e.value) == "oracle cannot be exported to ONNX: no ONNX export is written for this backend yet"
    assert not (run / "export" / "onnx" / "model.json").exists()


def test_a_compare_folder_exports_its_winner_and_says_which(tmp_path, tiny_demo, capsys):
    main(["compare", "--task", "classify", "--backends", "resnet18,mobilenet_v3_small", "--data", str(tiny_demo),
          "--epochs", "1", "--imgsz", "32", "--batch", "4", "--device", "cpu", "--out", str(tmp_path / "runs"),
          "--samples", "0"])
    folder = tmp_path / "runs" / "compare" / "classify"
    winner = json.loads((folder / "compare.json").read_text())["rows"][0]
    capsys.readouterr()
    main(["export", "--run", str(folder)])
    said = capsys.readouterr()
    assert f"using its winner, {winner['backend']}" in said.out + said.err
    card = json.loads((Path(winner["run"]) / "export" / "onnx" / "model.json").read_text())
    # the leaderboard's cell for onnxruntime's ms / image, beside torch's on the same images
    from zoo.pipeline.leaderboard import onnx_ms

    timed = card["ms_per_image"]
    assert onnx_ms(Path(winner["run"])) == f"{timed['onnxruntime']:.1f} ms (torch {timed['torch']:.1f})"
    assert onnx_ms(tmp_path) is None


@pytest.mark.parametrize("backend,task,says,flags,dynamic", [
    ("yolact++", "instance-seg", "deformable convolutions (torchvision's deform_conv2d, dcn_interval 3) have no "
                                 "ONNX export", {}, False),
    ("yolact", "instance-seg", "mask re-scoring net", {"rescoring": True}, False),
    ("yolact", "instance-seg", "--dynamic: its anchors are laid on the imgsz x imgsz grid", {}, True),
    pytest.param("d2-keypoint-rcnn", "keypoint", "heatmaps_to_keypoints) that torch's ONNX exporter cannot carry",
                 {}, False, marks=NEEDS_D2),
])
def test_backends_that_cannot_export_say_why(backend, task, says, flags, dynamic, tmp_path, tiny_demo):
    from zoo.backend import RunContext, Unsupported
    from zoo.config import resolve_config
    from zoo.data.reading import read_dataset
    from zoo.registry import get_registry
    from zoo.tasks import get_task

    spec = get_registry().backend(backend, task)
    cls = spec.load()
    config = resolve_config(cls.Config, backend=backend, task=task, flags={"device": "cpu", **flags})
    model = cls(get_task(task), read_dataset(tiny_demo).meta(), config, RunContext(run_dir=tmp_path))
    with pytest.raises(Unsupported) as e:
        model.export_onnx(tmp_path / "out", opset=None, dynamic=dynamic, sample=[])
    assert says in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()
