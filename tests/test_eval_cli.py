"""``zoo eval`` end to end on the demo dataset (labelme): ground truth written out as
predictions in each PRED format scores 1.0, a changed prediction scores less, bad input is a
one-line error naming the file."""

from __future__ import annotations

import json

import pytest
from flat_options import run_options
from PIL import Image
from zoo.cli import main
from zoo.evaluation.results import default_image_ids, predictions_to_coco_results
from zoo.predictions import Detection, InstancePredictions
from zoo.data.raster import instance_mask, mask_to_rle, semantic_label_map
from zoo.data.reading import read_dataset


@pytest.fixture(scope="module")
def demo(tiny_demo):
    return tiny_demo, read_dataset(tiny_demo)


class _Result:
    def __init__(self, exit_code, output):
        self.exit_code, self.output = exit_code, output


@pytest.fixture
def zoo_eval(capsys):
    """Run ``zoo eval ARGS`` through the real entry point (ZooError -> one line, exit 2)."""

    def run(*args):
        capsys.readouterr()
        code = 0
        try:
            main(["eval", *map(str, args)])
        except SystemExit as e:
            code = e.code
        out = capsys.readouterr()
        return _Result(code, out.out + out.err)

    return run


def _gt_predictions(ds, masks=False, keypoints=False):
    out = []
    for r in ds.images:
        dets = []
        for i in r.instances:
            if i.ignore:
                continue
            m = mask_to_rle(instance_mask(i, r.height, r.width))
            kps = [(x, y, 1.0) for x, y, _ in i.keypoints] if keypoints and i.keypoints else None
            dets.append(Detection(i.category, 0.9, i.bbox, mask=m if masks else None, keypoints=kps))
        out.append(InstancePredictions(r.id, dets))
    return out


@pytest.mark.parametrize("task", ["detect", "instance-seg", "keypoint"])
def test_coco_results_of_the_truth_score_one(demo, tmp_path, task, zoo_eval):
    root, ds = demo
    preds = _gt_predictions(ds, masks=task == "instance-seg", keypoints=task == "keypoint")
    pred = tmp_path / "results.json"
    pred.write_text(json.dumps(predictions_to_coco_results(preds, default_image_ids(ds))))
    out, plots = tmp_path / "metrics.json", tmp_path / "plots"
    res = zoo_eval("--task", task, "--gt", root, "--pred", pred, "--out", out, "--plots", plots)
    assert res.exit_code == 0, res.output
    m = json.loads(out.read_text())
    assert m["AP"] == pytest.approx(1.0) and m["main"] == "AP" and m["task"] == task
    assert "AP" in res.output and (plots / "pr_curve.png").stat().st_size > 1000
    if task == "keypoint":  # the demo's zoo.yaml sigmas are used
        assert m["conventions"]["oks_sigmas"] == {"top": 0.1, "right": 0.1, "bottom": 0.1, "left": 0.1}


def test_semantic_mask_folder(demo, tmp_path, zoo_eval):
    root, ds = demo
    folder = tmp_path / "masks"
    folder.mkdir()
    for k, r in enumerate(ds.images):
        lab = semantic_label_map(r, ds)
        lab[lab == 255] = 0
        if k == 0:
            lab[:] = 0  # one image predicted as all background
        Image.fromarray(lab).save(folder / f"{r.id}.png")
    out = tmp_path / "m.json"
    res = zoo_eval("--task", "semantic-seg", "--gt", root, "--pred", folder, "--out", out)
    assert res.exit_code == 0, res.output
    m = json.loads(out.read_text())
    assert 0.8 < m["mIoU"] < 1.0 and m["pixel_accuracy"] < 1.0 and set(m["IoU"]) == {"_background_", *ds.categories}
    (folder / f"{ds.images[3].id}.png").unlink()
    res = zoo_eval("--task", "semantic-seg", "--gt", root, "--pred", folder, "--out", out)
    assert res.exit_code == 2 and f"{ds.images[3].id}.png" in res.output


def test_classify_csv(demo, tmp_path, zoo_eval):
    root, ds = demo
    csv = tmp_path / "pred.csv"
    rows = ["image,label"] + [f"{r.id}.jpg,{ds.classes[r.labels[0]]}" for r in ds.images]
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "m.json"
    res = zoo_eval("--task", "classify", "--gt", root, "--pred", csv, "--out", out)
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["accuracy"] == 1.0
    wrong = ds.classes[(ds.images[0].labels[0] + 1) % len(ds.classes)]
    rows[1] = f"{ds.images[0].id},{wrong}"
    csv.write_text("\n".join(rows))
    zoo_eval("--task", "classify", "--gt", root, "--pred", csv, "--out", out)
    assert json.loads(out.read_text())["accuracy"] == pytest.approx(1 - 1 / len(ds))
    csv.write_text(f"{ds.images[0].id},anaemia\n")
    res = zoo_eval("--task", "classify", "--gt", root, "--pred", csv, "--out", out)
    assert res.exit_code == 2 and "pred.csv: line 1: unknown class 'anaemia' (did you mean 'anemia'?)" in res.output


def test_bad_results_json_names_the_file(demo, tmp_path, zoo_eval):
    root, _ = demo
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = zoo_eval("--task", "detect", "--gt", root, "--pred", bad, "--out", tmp_path / "m.json")
    assert res.exit_code == 2 and "bad.json: not valid JSON" in res.output
    bad.write_text(json.dumps([{"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]))
    res = zoo_eval("--task", "detect", "--gt", root, "--pred", bad, "--out", tmp_path / "m.json")
    assert res.exit_code == 2 and "bad.json: result 0: image_id 999 matches no ground-truth image" in res.output
    assert not (tmp_path / "m.json").exists()


def test_coco_gt_file_keeps_its_own_image_ids(demo, tmp_path, zoo_eval):
    """Results written against a COCO GT file use that file's image ids, whatever they are."""
    import shutil

    from zoo.evaluation.ground_truth import to_coco

    root, ds = demo
    gt = to_coco(ds)
    new_id = {img["id"]: 1000 + 7 * (len(gt["images"]) - k) for k, img in enumerate(gt["images"])}
    for img in gt["images"]:
        shutil.copy(root / img["file_name"], tmp_path / img["file_name"])
        img["id"] = new_id[img["id"]]
    for a in gt["annotations"]:
        a["image_id"] = new_id[a["image_id"]]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    results = predictions_to_coco_results(_gt_predictions(ds), default_image_ids(ds))
    for r in results:
        r["image_id"] = new_id[r["image_id"]]
    (tmp_path / "res.json").write_text(json.dumps(results))
    out = tmp_path / "m.json"
    res = zoo_eval("--task", "detect", "--gt", tmp_path / "gt.json", "--pred", tmp_path / "res.json", "--out", out)
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["AP"] == pytest.approx(1.0)


@pytest.mark.parametrize("task", ["classify", "semantic-seg", "instance-seg"])
def test_a_run_folders_predictions_read_as_the_run_saved_them(tiny_demo, tmp_path, task):
    """One reader of prediction files: what ``zoo run`` saved in predictions/ reads back through
    zoo.evaluation.results.read_predictions as the run folder loads it, and scores as the run did."""
    import toy_backend

    from zoo.evaluation import evaluate
    from zoo.evaluation.results import read_predictions
    from zoo.pipeline.run import execute
    from zoo.pipeline.runfolder import RunFolder
    from zoo.tasks import get_task

    # toy gives class scores on images it never saw; oracle answers the truth
    backend = "toy" if task == "classify" else "oracle"
    done = execute(run_options(task=task, backend=backend, registry=toy_backend.registry(), quiet=True,
                               data=tiny_demo, flags={"device": "cpu"}, out=tmp_path / "runs"))
    folder = RunFolder(done.run_dir)
    val = read_dataset(tiny_demo).subset(folder.read_split().val)
    saved = {"classify": "predictions.csv", "semantic-seg": "masks", "instance-seg": "coco_results.json"}[task]
    read = read_predictions(get_task(task), folder.predictions_dir / saved, val)
    loaded = folder.load_predictions(val)
    if task == "semantic-seg":  # label maps: arrays, compared by value
        by_id = {p.image_id: p.label_map for p in read}
        assert len(by_id) == len(loaded) and all((by_id[p.image_id] == p.label_map).all() for p in loaded)
    else:
        assert sorted(read, key=lambda p: p.image_id) == sorted(loaded, key=lambda p: p.image_id)
    metrics = evaluate(task, val, read)
    main = done.metrics["main"]
    assert metrics[main] == pytest.approx(done.metrics[main])
    if task == "classify":
        assert done.metrics["roc_auc"] is not None  # the class scores were read too
        assert metrics["roc_auc"] == pytest.approx(done.metrics["roc_auc"])
