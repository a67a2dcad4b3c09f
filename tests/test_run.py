"""The run pipeline, with the framework-free toy backend of tests/toy_backend.py."""

from __future__ import annotations

import json

import pytest
from flat_options import run_options
import toy_backend
import yaml
from toy_backend import make_dataset

from zoo.errors import ZooError
from zoo.pipeline.run import RunOptions, execute

TASK_MAIN = {"detect": "AP", "instance-seg": "AP", "keypoint": "AP"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> "object":
    return make_dataset(tmp_path_factory.mktemp("toydata"), n=12)


@pytest.fixture(scope="module")
def registry():
    return toy_backend.registry()


def _opts(tmp_path, data, registry, **kw) -> RunOptions:
    base = dict(task="detect", backend="toy", out=tmp_path / "runs", dataset=data, registry=registry,
                quiet=True, flags={"device": "cpu"})
    base.update(kw)
    return run_options(**base)


EXPECTED_FILES = [
    "config.yaml", "split.json", "manifest.json", "metrics.json", "report.md", "log.txt",
    "data/val_coco.json", "data/meta.json", "checkpoint/toy.json",
]


def test_detect_run_leaves_a_complete_run_folder(tmp_path, data, registry):
    result = execute(_opts(tmp_path, data, registry, sets=["epochs=2"]))
    run = result.run_dir
    assert run == tmp_path / "runs" / "toy-detect"
    for name in EXPECTED_FILES:
        assert (run / name).is_file(), name
    m = json.loads((run / "manifest.json").read_text())
    assert m["status"] == "finished" and m["done"] == ["prepare", "fit", "predict", "evaluate", "report"]
    assert m["backend"] == "toy" and m["task"] == "detect" and m["device"] == "cpu" and m["seed"] == 0
    assert m["versions"]["toy"] == "1.0" and m["versions"]["zoo"]
    assert m["parameters"] == 8
    assert set(m["timings"]) >= {"read", "fit", "predict", "evaluate", "report"}
    assert m["framework_metrics"]["toy_loss"] == 0.5
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["epochs"] == 2 and cfg["mode"] == "mean" and cfg["device"] == "cpu"
    split = json.loads((run / "split.json").read_text())
    assert len(split["val"]) == 2 and len(split["train"]) == 10
    gt = json.loads((run / "data/val_coco.json").read_text())
    assert [i["file_name"].rsplit(".", 1)[0] for i in gt["images"]] == split["val"]
    results = json.loads((run / "predictions/coco_results.json").read_text())
    # the mean-box toy predicts one box per category per image
    assert len(results) == 2 * len(split["val"])
    labelme = sorted((run / "predictions/labelme").glob("*.json"))
    assert [p.stem for p in labelme] == split["val"]
    doc = json.loads(labelme[0].read_text())
    assert (labelme[0].parent / doc["imagePath"]).resolve() == (data.root / f"{labelme[0].stem}.png").resolve()
    assert {s["shape_type"] for s in doc["shapes"]} == {"rectangle"}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == result.metrics and metrics["main"] == "AP"
    report = (run / "report.md").read_text()
    assert "AP" in report and "train 10, val 2" in report and "mode: mean" in report


@pytest.mark.parametrize("task", ["detect", "instance-seg", "keypoint", "classify", "semantic-seg"])
def test_ground_truth_as_predictions_scores_one(tmp_path, data, registry, task):
    # The oracle returns each val image's annotations: pipeline + shared evaluator must give 1.0.
    result = execute(_opts(tmp_path, data, registry, task=task, backend="oracle"))
    metrics = result.metrics
    main = metrics["main"]
    assert metrics[main] == pytest.approx(1.0), (main, metrics)
    assert (result.run_dir / "predictions").is_dir()
    assert len(list((result.run_dir / "predictions/labelme").glob("*.json"))) == len(
        json.loads((result.run_dir / "split.json").read_text())["val"])


def test_an_existing_run_is_never_overwritten(tmp_path, data, registry):
    a = execute(_opts(tmp_path, data, registry))
    b = execute(_opts(tmp_path, data, registry))
    c = execute(_opts(tmp_path, data, registry, name="toy-detect"))
    assert [a.run_dir.name, b.run_dir.name, c.run_dir.name] == ["toy-detect", "toy-detect-2", "toy-detect-3"]
    # same data + seed -> same split in every run, whatever the backend
    d = execute(_opts(tmp_path, data, registry, backend="oracle"))
    splits = {json.loads((r.run_dir / "split.json").read_text())["val"].__repr__() for r in (a, b, d)}
    assert len(splits) == 1


def test_resume_skips_a_finished_fit(tmp_path, data, registry, monkeypatch):
    monkeypatch.setenv("ZOO_TOY_FAIL", "predict")
    with pytest.raises(RuntimeError, match="fail in predict"):
        execute(_opts(tmp_path, data, registry))
    run = tmp_path / "runs" / "toy-detect"
    m = json.loads((run / "manifest.json").read_text())
    assert m["status"] == "failed" and m["done"] == ["prepare", "fit"] and "fail in predict" in m["error"]
    stamp = (run / "checkpoint/toy.json").stat().st_mtime_ns

    # fit must not run again: make it fail if it does
    monkeypatch.setenv("ZOO_TOY_FAIL", "fit")
    result = execute(_opts(tmp_path, data, registry, resume=True))
    assert result.run_dir == run and result.resumed
    assert (run / "checkpoint/toy.json").stat().st_mtime_ns == stamp
    m = json.loads((run / "manifest.json").read_text())
    assert m["status"] == "finished" and m["done"] == ["prepare", "fit", "predict", "evaluate", "report"]
    assert "fit" in m["timings"]

    # resuming a finished run does nothing and returns its scores
    again = execute(_opts(tmp_path, data, registry, resume=True))
    assert again.metrics == result.metrics


def test_resume_refuses_a_changed_config(tmp_path, data, registry, monkeypatch):
    monkeypatch.setenv("ZOO_TOY_FAIL", "predict")
    with pytest.raises(RuntimeError):
        execute(_opts(tmp_path, data, registry))
    monkeypatch.delenv("ZOO_TOY_FAIL")
    with pytest.raises(ZooError, match="epochs: 1 -> 5"):
        execute(_opts(tmp_path, data, registry, resume=True, sets=["epochs=5"]))
    with pytest.raises(ZooError, match="no run named 'nope'"):
        execute(_opts(tmp_path, data, registry, resume=True, name="nope"))


def test_config_errors_come_before_any_folder_is_made(tmp_path, data, registry):
    with pytest.raises(ZooError, match="did you mean 'mode'"):
        execute(_opts(tmp_path, data, registry, sets=["mdoe=oracle"]))
    with pytest.raises(ZooError, match="unknown task .nope."):
        execute(_opts(tmp_path, data, registry, backend="toy", task="nope"))
    assert not (tmp_path / "runs").exists()


def test_reusing_a_split_file_from_another_run(tmp_path, data, registry):
    a = execute(_opts(tmp_path, data, registry, flags={"device": "cpu", "seed": 5}))
    b = execute(_opts(tmp_path, data, registry, backend="oracle", split_file=a.run_dir / "split.json"))
    assert (b.run_dir / "split.json").read_text() == (a.run_dir / "split.json").read_text()


def test_backend_returning_a_bad_prediction_is_named(tmp_path, data, registry, monkeypatch):
    from zoo.predictions import Detection, InstancePredictions

    def bad(self, images):
        for r in images:
            yield InstancePredictions(r.id, [Detection(7, 0.5, (0.0, 0.0, 1.0, 1.0))])

    monkeypatch.setattr(toy_backend.Toy, "predict", bad)
    with pytest.raises(ZooError, match=r"backend 'toy' returned a bad prediction for image .*category 7"):
        execute(_opts(tmp_path, data, registry))


def test_backend_never_sees_val_annotations_at_predict_time(tmp_path, data, registry, monkeypatch):
    seen = []
    real = toy_backend.Toy.predict

    def spy(self, images):
        seen.extend(images)
        return real(self, images)

    monkeypatch.setattr(toy_backend.Toy, "predict", spy)
    execute(_opts(tmp_path, data, registry))
    assert seen and all(not r.instances and not r.labels for r in seen)


def test_resume_by_name_takes_that_run_not_the_newest(tmp_path, data, registry, monkeypatch):
    monkeypatch.setenv("ZOO_TOY_FAIL", "predict")
    for _ in range(2):
        with pytest.raises(RuntimeError):
            execute(_opts(tmp_path, data, registry))
    monkeypatch.delenv("ZOO_TOY_FAIL")
    first = execute(_opts(tmp_path, data, registry, resume=True, name="toy-detect"))
    assert first.run_dir.name == "toy-detect"
    newest = execute(_opts(tmp_path, data, registry, resume=True))
    assert newest.run_dir.name == "toy-detect-2"


def test_a_name_taken_meanwhile_moves_to_the_next_free_one(tmp_path, data, registry, monkeypatch):
    import zoo.pipeline.prepare

    real = zoo.pipeline.prepare.next_free
    calls = []

    def racing(out, name):  # another process creates the folder right after we chose it
        path = real(out, name)
        if not calls:
            path.mkdir(parents=True)
        calls.append(path)
        return path

    monkeypatch.setattr(zoo.pipeline.prepare, "next_free", racing)
    result = execute(_opts(tmp_path, data, registry))
    assert result.run_dir.name == "toy-detect-2" and (result.run_dir / "manifest.json").is_file()


def test_a_budget_is_recorded_in_the_manifest(tmp_path, data, registry):
    result = execute(_opts(tmp_path, data, registry, sets=["budget=90s"]))
    budget = json.loads((result.run_dir / "manifest.json").read_text())["budget"]
    assert budget["seconds"] == 90.0 and 0 <= budget["fit_seconds"] < 90
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["budget"] == 90.0


class _Recorder:
    """A zoo.progress.Reporter that keeps what it is told."""

    def __init__(self):
        self.said, self.warned, self.tracked = [], [], []

    def say(self, message):
        self.said.append(message)

    def warn(self, message):
        self.warned.append(message)

    def track(self, items, description, total=None):
        self.tracked.append((description, total))
        return iter(items)


def test_the_pipeline_talks_only_through_its_reporter(tmp_path, data, registry, capsys):
    rec = _Recorder()
    result = execute(_opts(tmp_path, data, registry, quiet=False, reporter=rec))
    assert capsys.readouterr() == ("", "")  # nothing printed: the CLI draws what it is told and returns
    assert rec.said[0].startswith("imgsz 96: median image 48 px")  # the auto choices, said and why
    assert rec.said[1].startswith(f"toy detect on {data.root}: 10 train / 2 val images, device cpu")
    assert "training toy for 1 epoch(s) ..." in rec.said and not rec.warned
    assert rec.tracked == [("predicting", 2)]
    assert result.manifest.timings.predict_per_image_ms is not None

    quiet = _Recorder()  # quiet: the messages go to the log; the progress bars stay
    execute(_opts(tmp_path, data, registry, reporter=quiet))
    assert quiet.said == [] and quiet.tracked == [("predicting", 2)]
