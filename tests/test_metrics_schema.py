"""The metrics schema (zoo.metrics): every evaluator's metrics dict is what its schema declares;
what is shown is the schema's, not the dict's order; and a metric added in one place -- its
evaluator with its schema, one registration -- reaches report.md, report.html, the
leaderboard and the CLI tables."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import toy_backend
from toy_backend import make_dataset

import zoo.registry
from zoo import hookimpl
from zoo.cli import main
from zoo.evaluation.classify import SCHEMA as CLASSIFY_SCHEMA
from zoo.evaluation.classify import ClassifyEvaluator
from zoo.errors import ZooError
from zoo.evaluation.semantic import label_map_for
from zoo.metrics import EvaluatorSpec, Metric, MetricsSchema
from zoo.pipeline.compare_plots import charted
from zoo.predictions import ClassPrediction, InstancePredictions, SemanticPrediction, score_predictions
from zoo.tasks import TASKS, get_task

#: what a metrics dict holds at the top level besides its scores
_NOT_SCORES = {"main", "per_class", "conventions", "ci95", "images", "detections", "classes", "confusion_matrix",
               "IoU", "Dice", "pixels", "bbox"}


def _truth(task, record, meta):
    """The ground truth of ``record`` as ``task``'s prediction (instance tasks: nothing detected)."""
    if task.name == "classify":
        return ClassPrediction(record.id, record.labels[0], scores=list(np.eye(len(meta.classes))[record.labels[0]]))
    if task.name == "semantic-seg":
        label_map = label_map_for(record, meta)
        return SemanticPrediction(record.id, np.where(label_map == 255, 0, label_map))
    return InstancePredictions(record.id, [])


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_evaluator_writes_what_its_schema_declares(tmp_path, name):
    task = get_task(name)
    data = make_dataset(tmp_path / "data", n=6)
    preds = [_truth(task, r, data) for r in data.images]
    metrics, evaluator = score_predictions(task, data, preds, ci95=True)
    schema = task.metrics_schema
    declared = [m.key for m in schema.scores]
    assert metrics["main"] == schema.main
    assert [k for k in metrics if k not in _NOT_SCORES] == declared
    assert set(metrics["ci95"]) == set(schema.intervals)
    assert set(evaluator.resampled(np.ones((2, len(data.images))))) == set(schema.intervals)
    row = next(iter(metrics["per_class"].values()))
    assert set(schema.per_class) <= set(row) and schema.per_class_count in row
    if name in ("classify", "semantic-seg"):  # the truth fed back
        assert metrics[schema.main] == 1.0


def test_what_is_shown_follows_the_schema_not_the_dicts_order():
    schema = get_task("semantic-seg").metrics_schema
    metrics = {"main": "mIoU", "mASSD": 3.0, "pixel_accuracy": 0.9, "mHD95": 4.0, "mDice": 0.7, "mIoU": 0.6,
               "mystery": 0.5, "per_class": {"bg": {"Dice": 0.9, "pixels": 10, "IoU": 0.8}}}
    assert list(schema.headline_of(metrics, n=3)) == ["mIoU", "mDice", "mHD95"]
    assert list(schema.scores_of(metrics)) == ["mIoU", "mDice", "mHD95", "pixel_accuracy", "mASSD"]
    assert schema.per_class_columns(metrics) == ["IoU", "Dice", "pixels"]
    assert schema.per_class_scores(metrics) == {"bg": 0.8}
    assert not schema.metric("mHD95").higher_is_better and schema.metric("mHD95").unit


def test_scores_png_charts_fractions_only():
    metrics = {"mIoU": 0.6, "mDice": 0.7, "mHD95": 40.0, "mIoU_foreground": 0.5, "pixel_accuracy": 0.9}
    assert charted(get_task("semantic-seg").metrics_schema, metrics) == ["mIoU", "mDice", "mIoU_foreground"]
    assert charted(get_task("detect").metrics_schema, {"AP": 0.5, "AP50": 0.7, "AP75": 0.4}) == ["AP", "AP50", "AP75"]


def test_one_per_class_metric_per_task():
    assert {n: get_task(n).metrics_schema.per_class_main for n in TASKS} == {
        "classify": "f1", "detect": "AP", "instance-seg": "AP", "keypoint": "AP", "semantic-seg": "IoU"}


@pytest.mark.parametrize("bad", [
    dict(headline=("AP", "nope")),  # a headline score not declared
    dict(intervals=("nope",)),  # an interval of nothing
    dict(scores=(Metric("AP", higher_is_better=False),)),  # ranked by its largest value
    dict(per_class_main="IoU"),  # not among the per-class values
    dict(scores=(Metric("AP"), Metric("AP50")), intervals=("AP50",)),  # the verdict resamples the main metric
])
def test_an_inconsistent_schema_is_refused(bad):
    base = dict(scores=(Metric("AP"),), headline=("AP",), per_class=("AP",), per_class_count="instances")
    with pytest.raises(ValueError):
        MetricsSchema(**{**base, **bad})


class Undeclared(ClassifyEvaluator):
    """Reports a score its schema (classify's) does not declare."""

    def evaluate(self):
        return {**super().evaluate(), "hidden": 0.5}


class UndeclaredPlugin:
    @hookimpl
    def zoo_evaluators(self):
        return [EvaluatorSpec("classify", Undeclared, CLASSIFY_SCHEMA)]


def test_metrics_unlike_their_schema_are_refused(tmp_path, monkeypatch):
    reg = zoo.registry.Registry(plugins=[UndeclaredPlugin()], entry_points=False)
    monkeypatch.setattr(zoo.registry, "get_registry", lambda: reg)
    task = get_task("classify")
    data = make_dataset(tmp_path / "data", n=4)
    with pytest.raises(ZooError, match="the classify evaluator .* does not declare: score 'hidden' not declared"):
        score_predictions(task, data, [_truth(task, r, data) for r in data.images])
    assert CLASSIFY_SCHEMA.problems({"main": "f1", "accuracy": 1.0, "ci95": {}}) == [
        "main is 'f1', the schema's 'accuracy'", "declared score 'balanced_accuracy' missing",
        "declared score 'f1' missing", "declared score 'precision' missing", "declared score 'recall' missing",
        "declared score 'roc_auc' missing", "intervals of [], declared ['accuracy']"]


def test_a_task_no_plugin_scores_is_one_clear_error(monkeypatch):
    reg = zoo.registry.Registry(entry_points=False)
    monkeypatch.setattr(zoo.registry, "get_registry", lambda: reg)
    with pytest.raises(ZooError, match="no evaluator is registered for task 'detect'"):
        get_task("detect").metrics_schema


# -- a toy metric, added in one place --------------------------------------------------------------

#: classify's schema plus one score, shown second
TOY_SCHEMA = MetricsSchema(
    scores=(*CLASSIFY_SCHEMA.scores, Metric("error_rate", higher_is_better=False)),
    headline=("accuracy", "error_rate", *CLASSIFY_SCHEMA.headline[1:]),
    per_class=CLASSIFY_SCHEMA.per_class, per_class_count=CLASSIFY_SCHEMA.per_class_count,
    per_class_main=CLASSIFY_SCHEMA.per_class_main, intervals=CLASSIFY_SCHEMA.intervals,
)


class ErrorRateEvaluator(ClassifyEvaluator):
    """Classification plus the share of images classified wrong."""

    def evaluate(self):
        metrics = super().evaluate()
        return {**metrics, "error_rate": 1.0 - metrics["accuracy"]}


class ToyMetricPlugin:
    @hookimpl
    def zoo_evaluators(self):
        return [EvaluatorSpec("classify", ErrorRateEvaluator, TOY_SCHEMA)]


@pytest.fixture
def toy_metric_registry(monkeypatch):
    reg = toy_backend.registry()
    # the one registration: the toy plugin scores classify in place of zoo's own evaluation plugin
    reg.pm.unregister(name="evaluation")
    reg.pm.register(ToyMetricPlugin())
    monkeypatch.setattr(zoo.registry, "get_registry", lambda: reg)
    return reg


def _zoo(argv, capsys) -> str:
    """``zoo ARGV`` in this process; its stdout (the tables)."""
    capsys.readouterr()
    try:
        main(argv)
    except SystemExit as e:
        assert not e.code, capsys.readouterr().err
    return capsys.readouterr().out


def test_a_toy_metric_appears_in_every_report(tmp_path, tiny_demo, toy_metric_registry, capsys):
    runs = tmp_path / "runs"
    common = ["--task", "classify", "--data", str(tiny_demo), "--out", str(runs), "--device", "cpu"]
    summary = _zoo(["run", "--backend", "toy", *common], capsys)
    metrics = json.loads((runs / "toy-classify" / "metrics.json").read_text())
    wrong = f"{1.0 - metrics['accuracy']:.3f}"
    assert metrics["error_rate"] == pytest.approx(1.0 - metrics["accuracy"])
    assert re.search(rf"│ error_rate +│ +{wrong} │", summary), summary
    assert f"| error_rate | {wrong} |" in (runs / "toy-classify" / "report.md").read_text()
    assert f"<td>error_rate</td><td>{wrong}</td>" in (runs / "toy-classify" / "report.html").read_text()

    board = _zoo(["compare", "--backends", "toy,oracle", *common], capsys)
    header = next(line for line in board.splitlines() if "backend" in line).split()
    assert header[header.index("accuracy") + 1] == "error_rate"
    assert any(line.split()[1:2] == ["oracle"] and "0.000" in line for line in board.splitlines())
    folder = runs / "compare" / "classify"
    md = (folder / "leaderboard.md").read_text()
    assert "| **accuracy** | error_rate |" in md and f"| {wrong} |" in md
    assert "<th>error_rate</th>" in (folder / "report.html").read_text()
    assert "error_rate" in (folder / "leaderboard.csv").read_text().splitlines()[0]
