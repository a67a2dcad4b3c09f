"""What to label next: the documented uncertainty scores, a deterministic ranking sorted by
them, pre-filled labelme JSON for the top N, and `zoo run` on a partly annotated folder."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
from pathlib import Path

import pytest
from flat_options import run_options
import toy_backend

import zoo.registry
from zoo.cli import main
from zoo.dataset import Dataset, ImageRecord
from zoo.predictions import ClassPrediction, Detection, InstancePredictions
from zoo.pipeline.ranking import rank, uncertainty
from zoo.pipeline.run import execute

META = Dataset(categories=["rbc", "wbc"], classes=["a", "b", "c"])


def det(category, score, box=(0, 0, 10, 10)):
    return Detection(category, score, box)


def test_detection_scores_follow_the_documented_rule():
    # low confidence: 1 - |2s - 1|; a rival of another class on the same box: 1 - (s - r)
    assert uncertainty(InstancePredictions("a", [det(0, 0.5)]), META)[0] == pytest.approx(1.0)
    assert uncertainty(InstancePredictions("a", [det(0, 0.95), det(1, 0.9, (50, 50, 60, 60))]), META)[0] == \
        pytest.approx(0.1 + 0.2)
    score, why = uncertainty(InstancePredictions("a", [det(0, 0.6), det(1, 0.55)]), META)
    assert score == pytest.approx(0.95) and "rbc 0.60 or wbc 0.55" in why
    assert uncertainty(InstancePredictions("a", [det(0, 0.05)]), META)[0] == 0.0  # below 0.1: noise


def test_classify_score_is_normalised_entropy():
    assert uncertainty(ClassPrediction("a", 0, [1 / 3] * 3), META)[0] == pytest.approx(1.0)
    assert uncertainty(ClassPrediction("a", 0, [1.0, 0.0, 0.0]), META)[0] == 0.0
    p = [0.7, 0.2, 0.1]
    assert uncertainty(ClassPrediction("a", 0, p), META)[0] == pytest.approx(
        -sum(q * math.log(q) for q in p) / math.log(3))


def test_ranking_is_sorted_by_score_and_ties_by_id():
    records = [ImageRecord(i, 10, 10) for i in ("d", "b", "a", "c")]
    preds = [InstancePredictions("d", []), InstancePredictions("b", [det(0, 0.95)]),
             InstancePredictions("a", [det(0, 0.5)]), InstancePredictions("c", [det(1, 0.95)])]
    ranked = rank(records, preds, META)
    assert [r.image_id for r in ranked] == ["a", "b", "c", "d"]
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)


def partly_annotated(src: Path, dst: Path, unlabelled: int = 3) -> list[str]:
    """A copy of ``src`` whose first ``unlabelled`` images lost their annotation file."""
    shutil.copytree(src, dst)
    names = sorted(p.name for p in dst.glob("*.jpg"))[:unlabelled]
    for name in names:
        (dst / name).with_suffix(".json").unlink()
    return names


def read_ranking(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def assert_labelme_loads(json_file: Path) -> None:
    """labelme's own LabelFile when it is installed (it needs a Qt stack); else the contract
    its loader checks (labelme/_label_file.py: shapes' label, points, shape_type, group_id,
    flags; an image file whose size matches imageHeight/imageWidth)."""
    if importlib.util.find_spec("labelme") is not None:
        from labelme import LabelFile

        lf = LabelFile(str(json_file))
        assert lf.shapes is not None
        return
    from PIL import Image

    doc = json.loads(json_file.read_text())
    with Image.open(json_file.parent / doc["imagePath"]) as img:
        assert img.size == (doc["imageWidth"], doc["imageHeight"])
    assert doc["imageData"] is None and isinstance(doc["flags"], dict)
    for s in doc["shapes"]:
        assert isinstance(s["label"], str) and isinstance(s["shape_type"], str)
        assert s["points"] and all(len(p) == 2 and all(isinstance(v, (int, float)) for v in p) for p in s["points"])
        assert s["group_id"] is None or isinstance(s["group_id"], int)
        assert all(isinstance(k, str) and isinstance(v, bool) for k, v in s["flags"].items())


def test_run_on_a_partly_annotated_folder_ranks_the_rest(tmp_path, tiny_demo, monkeypatch):
    registry = toy_backend.registry()
    monkeypatch.setattr(zoo.registry, "get_registry", lambda: registry)
    data = tmp_path / "data"
    unlabelled = partly_annotated(tiny_demo, data)
    result = execute(run_options(task="detect", backend="oracle", quiet=True, data=data, flags={"device": "cpu"},
                                 out=tmp_path / "runs", rank=True, top=2))
    run = result.run_dir
    assert result.manifest.data.unlabelled == unlabelled
    assert result.manifest.data.summary["images"] == 12 - 3  # trained on the annotated ones only
    report = (run / "report.md").read_text()
    assert "3 image(s) without annotation" in report and "## Label next" in report
    rows = read_ranking(run / "ranking" / "ranking.csv")
    assert sorted(Path(r["image"]).name for r in rows) == unlabelled
    assert [float(r["score"]) for r in rows] == sorted((float(r["score"]) for r in rows), reverse=True)
    prefilled = sorted((run / "ranking").glob("*.json"))
    assert [p.stem for p in prefilled] == sorted(Path(r["image"]).stem for r in rows[:2])
    for p in prefilled:
        assert_labelme_loads(p)

    # zoo predict --rank on the same folder: the same images, the same order, every time
    outs = [tmp_path / "rank1", tmp_path / "rank2"]
    for out in outs:
        main(["predict", "--run", str(run), str(data), "--rank", "--top", "1", "--out", str(out), "--device", "cpu"])
    assert (outs[0] / "ranking.csv").read_text() == (outs[1] / "ranking.csv").read_text()
    assert [Path(r["image"]).name for r in read_ranking(outs[0] / "ranking.csv")] == \
        [Path(r["image"]).name for r in rows]
    assert len(list(outs[0].glob("*.json"))) == 1


def test_rank_refuses_semantic_seg_before_training(tmp_path, tiny_demo):
    from zoo.errors import ZooError

    with pytest.raises(ZooError, match="without per-pixel scores"):
        execute(run_options(task="semantic-seg", backend="oracle", quiet=True, registry=toy_backend.registry(),
                            data=tiny_demo, out=tmp_path / "runs", rank=True))
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def oracle_run(tmp_path, tiny_demo, monkeypatch) -> Path:
    """A finished detect run of the oracle backend on the tiny demo (toy registry in place)."""
    registry = toy_backend.registry()
    monkeypatch.setattr(zoo.registry, "get_registry", lambda: registry)
    return execute(run_options(task="detect", backend="oracle", quiet=True, data=tiny_demo,
                               flags={"device": "cpu"}, out=tmp_path / "runs")).run_dir


def plain_images(src: Path, dst: Path) -> list[str]:
    """The images of ``src`` without any annotation, half of them in a sub-folder: what a user
    has before labelling (sub-folders that must not be read as class folders)."""
    names = sorted(p.name for p in src.glob("*.jpg"))
    for k, name in enumerate(names):
        target = dst / ("day2" if k % 2 else "") / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / name, target)
    return names


def test_predict_rank_ranks_a_folder_of_plain_images(tmp_path, tiny_demo, oracle_run):
    run = oracle_run
    names = plain_images(tiny_demo, tmp_path / "new")
    out = tmp_path / "next"
    main(["predict", "--run", str(run), str(tmp_path / "new"), "--rank", "--top", "3", "--out", str(out),
          "--device", "cpu"])
    rows = read_ranking(out / "ranking.csv")
    assert sorted(Path(r["image"]).name for r in rows) == names  # every image, the sub-folder's too
    assert len(list(out.rglob("*.json"))) == 3


def test_predict_rank_skips_only_images_with_an_annotation_file(tmp_path, tiny_demo, oracle_run):
    # an empty labelme JSON is a labelled negative: annotated; a missing one is not
    run = oracle_run
    data = tmp_path / "data"
    unlabelled = partly_annotated(tiny_demo, data, unlabelled=4)
    negative = sorted(data.glob("*.json"))[0]
    doc = json.loads(negative.read_text())
    negative.write_text(json.dumps({**doc, "shapes": []}))
    main(["predict", "--run", str(run), str(data), "--rank", "--out", str(tmp_path / "next"), "--device", "cpu"])
    assert sorted(Path(r["image"]).name for r in read_ranking(tmp_path / "next" / "ranking.csv")) == unlabelled


def test_predict_takes_a_glob_of_images(tmp_path, tiny_demo, oracle_run):
    run = oracle_run
    names = plain_images(tiny_demo, tmp_path / "new")
    out = tmp_path / "pred"
    main(["predict", "--run", str(run), str(tmp_path / "new" / "**" / "*.jpg"), "--out", str(out), "--device", "cpu"])
    assert sorted(p.with_suffix(".jpg").name for p in out.glob("*.json")) == names
    with pytest.raises(SystemExit) as e:
        main(["predict", "--run", str(run), str(tmp_path / "new" / "*.png"), "--out", str(out), "--device", "cpu"])
    assert e.value.code == 2
