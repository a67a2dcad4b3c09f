"""``--test``: the chosen model is scored once on the test split by the same evaluator; the
scores sit beside val's in metrics.json, report.md and the leaderboard; training never sees
a test image."""

from __future__ import annotations

import json

import pytest
from flat_options import compare_options, run_options
import toy_backend
from toy_backend import make_dataset

from zoo.pipeline.compare import compare
from zoo.pipeline.run import execute


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("toydata"), n=16)


@pytest.mark.parametrize("task", ["detect", "semantic-seg", "classify"])
def test_test_split_is_scored_once_beside_val(tmp_path, data, monkeypatch, task):
    seen: list[str] = []
    fit = toy_backend.Toy.fit

    def spy(self, train, val):
        seen.extend(r.id for r in (*train.images, *val.images))
        return fit(self, train, val)

    monkeypatch.setattr(toy_backend.Toy, "fit", spy)
    result = execute(run_options(task=task, backend="toy", registry=toy_backend.registry(), quiet=True,
                                 dataset=data, val=0.25, test=0.25, flags={"device": "cpu"},
                                 out=tmp_path / "runs"))
    run, metrics = result.run_dir, result.metrics
    split = json.loads((run / "split.json").read_text())
    assert len(split["test"]) == 4 and not set(seen) & set(split["test"])
    test = metrics["test"]
    assert set(test) == set(metrics) - {"test"}  # the same keys
    assert test["images"] == 4 and metrics["images"] == 4 and test["main"] == metrics["main"]
    main = metrics["main"]
    assert metrics["ci95"][main] and test["ci95"][main]
    report = (run / "report.md").read_text()
    assert "| metric | val | test |" in report
    lo, hi = test["ci95"][main]
    assert f"{test[main]:.3f} ({lo:.2f}–{hi:.2f})" in report
    pred = {"detect": "coco_results.json", "semantic-seg": "masks", "classify": "predictions.csv"}[task]
    assert (run / "predictions" / "test" / pred).exists()
    if task == "detect":
        gt = json.loads((run / "data" / "test_coco.json").read_text())
        assert [i["file_name"].rsplit(".", 1)[0] for i in gt["images"]] == split["test"]


def test_leaderboard_shows_val_and_test(tmp_path, tiny_demo):
    result = compare(compare_options(task="detect", backends=["toy", "oracle"], registry=toy_backend.registry(),
                                     data=tiny_demo, val=0.25, test=0.25, flags={"device": "cpu"},
                                     out=tmp_path / "runs"))
    board = (result.folder / "leaderboard.md").read_text()
    assert "**AP** test" in board and "/ 3 test images" in board
    # the oracle answers from the ground truth on disk: 1 on val and on test alike
    oracle = next(r for r in result.rows if r.backend == "oracle")
    assert oracle.metrics["AP"] == pytest.approx(1.0) and oracle.metrics["test"]["AP"] == pytest.approx(1.0)
    lo, hi = oracle.metrics["test"]["ci95"]["AP"]
    assert f"1.000 ({lo:.2f}–{hi:.2f})" in board
    csv = (result.folder / "leaderboard.csv").read_text().splitlines()[0]
    assert "test AP" in csv and "AP ci95 low" in csv
