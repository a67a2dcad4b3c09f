"""`zoo predict`: a finished run's model on new images -> image copies + labelme JSON that
zoo's own labelme reader reads back; the user's images are never touched."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from flat_options import run_options
import toy_backend

import zoo.registry
from zoo.cli import main
from zoo.errors import ZooError
from zoo.pipeline.predict import predict_to_labelme
from zoo.data.reading import read_dataset
from zoo.pipeline.run import execute


@pytest.fixture(scope="module")
def registry():
    return toy_backend.registry()


def _run(tmp_path, data, registry, task, backend="oracle"):
    return execute(run_options(task=task, backend=backend, registry=registry, quiet=True, data=data,
                               flags={"device": "cpu"}, out=tmp_path / "runs"))


def _images_only(src: Path, dst: Path, n: int = 4) -> Path:
    dst.mkdir(parents=True)
    for p in sorted(src.glob("*.jpg"))[:n]:
        shutil.copy(p, dst / p.name)
    return dst


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("task", ["detect", "instance-seg", "keypoint", "classify"])
def test_predictions_read_back_as_the_annotations(tmp_path, tiny_demo, registry, task):
    # The oracle predicts each known image's ground truth; zoo's labelme reader must read
    # the written JSON back to the same objects (as a corrected file would be).
    run = _run(tmp_path, tiny_demo, registry, task).run_dir
    images = _images_only(tiny_demo, tmp_path / "new")
    before = _digest(images)
    out = tmp_path / "pred"
    written = predict_to_labelme(run, [images], out, conf=0.25, device="cpu", registry=registry).written
    assert _digest(images) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{p.stem}.json" for p in images.iterdir()] + [p.name for p in images.iterdir()])
    assert len(written) == 4
    got = read_dataset(out, labels=None)
    truth = read_dataset(tiny_demo)
    for rec in got.images:
        gt = truth.image(rec.id)
        if task == "classify":
            assert [got.classes[c] for c in rec.labels] == [truth.classes[c] for c in gt.labels]
            continue
        names = lambda ds, r: sorted((ds.categories[i.category], tuple(round(v) for v in i.bbox)) for i in r.instances)
        if task == "detect":
            assert names(got, rec) == names(truth, gt)
        else:  # outlines traced from masks: same objects, same places, to a pixel or two
            assert len(rec.instances) == len(gt.instances)
            assert sorted(got.categories[i.category] for i in rec.instances) == sorted(truth.categories[i.category] for i in gt.instances)
        if task == "keypoint":
            assert all(i.keypoints and len(i.keypoints) == 4 for i in rec.instances)


def test_semantic_predictions_are_polygons_per_class(tmp_path, tiny_demo, registry):
    run = _run(tmp_path, tiny_demo, registry, "semantic-seg").run_dir
    images = _images_only(tiny_demo, tmp_path / "new", n=2)
    out = tmp_path / "pred"
    predict_to_labelme(run, list(images.iterdir()), out, device="cpu", registry=registry)
    doc = json.loads(next(out.glob("*.json")).read_text())
    assert doc["shapes"] and {s["shape_type"] for s in doc["shapes"]} == {"polygon"}
    assert {s["label"] for s in doc["shapes"]} <= {"platelet", "rbc", "wbc"}


def test_conf_cut(tmp_path, tiny_demo, registry):
    run = _run(tmp_path, tiny_demo, registry, "detect", backend="toy").run_dir  # scores 0.5
    images = _images_only(tiny_demo, tmp_path / "new", n=1)
    low = predict_to_labelme(run, [images], tmp_path / "low", conf=0.4, device="cpu", registry=registry).written
    high = predict_to_labelme(run, [images], tmp_path / "high", conf=0.6, device="cpu", registry=registry).written
    assert len(json.loads(low[0].read_text())["shapes"]) == 3
    assert json.loads(high[0].read_text())["shapes"] == []


def test_refuses_to_write_into_the_input(tmp_path, tiny_demo, registry):
    run = _run(tmp_path, tiny_demo, registry, "detect").run_dir
    images = _images_only(tiny_demo, tmp_path / "new", n=1)
    before = _digest(images)
    for out in (images, images / "sub"):
        with pytest.raises(ZooError, match="inside the input"):
            predict_to_labelme(run, [images], out, device="cpu", registry=registry)
    with pytest.raises(ZooError, match="inside the input"):
        predict_to_labelme(run, [next(images.iterdir())], images, device="cpu", registry=registry)
    assert _digest(images) == before


def test_cli_and_bad_input(tmp_path, tiny_demo, registry, monkeypatch, capsys):
    monkeypatch.setattr(zoo.registry, "get_registry", lambda: registry)
    run = _run(tmp_path, tiny_demo, registry, "detect").run_dir
    images = _images_only(tiny_demo, tmp_path / "new", n=2)
    main(["predict", "--run", str(run), str(images), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert len(list((tmp_path / "out").glob("*.json"))) == 2
    (tmp_path / "notes.txt").write_text("x")
    cases = [
        (["--run", str(tmp_path / "nope"), str(images)], "no such run folder"),
        (["--run", str(tmp_path), str(images)], "not a zoo run folder"),
        (["--run", str(run), str(tmp_path / "missing.jpg")], "no such file or folder"),
        (["--run", str(run), str(tmp_path / "notes.txt")], "not an image file"),
        (["--run", str(run), str(images), "--conf", "2"], "--conf 2"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as e:
            main(["predict", *argv, "--out", str(tmp_path / "out2")])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and "Traceback" not in err, (argv, err)
