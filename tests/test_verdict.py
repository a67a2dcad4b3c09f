"""The paired verdict of ``zoo compare``: a paired bootstrap over images, pooled over folds,
re-scored from the runs' own saved predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flat_options import compare_options
import toy_backend

from zoo.pipeline.compare import compare
from zoo.data.reading import read_dataset
from zoo.data.split import read_split
from zoo.tasks import get_task
from zoo.pipeline.verdict import paired, verdicts


@pytest.fixture(scope="module")
def registry():
    return toy_backend.registry()


@pytest.fixture(scope="module")
def cross_validated(tmp_path_factory, tiny_demo, registry):
    out = tmp_path_factory.mktemp("verdict") / "runs"
    return compare(compare_options(task="classify", backends=["toy", "oracle"], registry=registry, samples=0,
                                   data=tiny_demo, folds=2, flags={"device": "cpu"}, out=out))


def test_a_strictly_better_backend_wins_with_probability_one(cross_validated):
    oracle, toy = cross_validated.rows
    assert oracle.backend == "oracle" and oracle.metrics["accuracy"] == pytest.approx(1.0)
    v = cross_validated.verdicts["toy"]
    assert v.difference == pytest.approx(1.0 - toy.metrics["accuracy"])
    assert v.p_better == 1.0 and v.ci95[0] > 0 and v.distinguishable
    md = (cross_validated.folder / "leaderboard.md").read_text()
    assert "paired bootstrap over images, pooled over folds" in md and "P 1.00" in md
    assert json.loads((cross_validated.folder / "compare.json").read_text())["verdict"][0]["p_winner_better"] == 1.0


def test_identical_predictions_give_difference_zero(cross_validated, tiny_demo):
    ds, task = read_dataset(tiny_demo), get_task("classify")
    folds = [ds.subset(read_split(cross_validated.folder / f"fold-{i}" / "split.json").val) for i in range(2)]
    toy_runs = [(r.fold, r.run_dir) for r in cross_validated.runs if r.backend == "toy"]
    # the same runs under two names: every resample's difference is exactly 0
    (v,) = verdicts(task, folds, {"a": toy_runs, "b": toy_runs}, {"a": 0.5, "b": 0.5}, "accuracy", "a")
    assert v.difference == 0 and v.ci95 == [0.0, 0.0] and v.p_better == 0.5 and not v.distinguishable


def test_paired_counts_ties_half_and_skips_undefined_resamples():
    v = paired(np.array([1.0, 0.5, np.nan, 0.2]), np.array([0.0, 0.5, 0.3, 0.4]), 0.1, "x")
    assert v.p_better == pytest.approx((1 + 0.5 + 0) / 3)

