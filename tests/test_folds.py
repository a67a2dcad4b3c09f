"""``zoo compare --folds K --seeds``: stratified K-fold cross-validation, the same folds for every
backend, and a leaderboard whose mean ± std are those of the runs' metrics.json."""

from __future__ import annotations

import csv
import json
import statistics
from collections import Counter

import pytest
from flat_options import compare_options, run_options
import toy_backend

from zoo.pipeline.compare import compare
from zoo.errors import ZooError
from zoo.data.folds import make_folds, parse_seeds
from zoo.data.reading import read_dataset
from zoo.tasks import get_task


@pytest.fixture(scope="module")
def registry():
    return toy_backend.registry()


@pytest.mark.parametrize("task", ["detect", "classify"])
def test_folds_are_disjoint_cover_the_data_and_are_stratified(tiny_demo, task):
    ds, t = read_dataset(tiny_demo), get_task(task)
    folds = make_folds(ds, t, 3, seed=0)
    usable = sorted(r.id for r in ds.images if t.is_annotated(r))
    vals = [f.val for f in folds]
    assert sorted(i for v in vals for i in v) == usable  # every image scored exactly once
    for f in folds:
        assert not set(f.train) & set(f.val) and sorted(f.train + f.val) == usable
    assert max(map(len, vals)) - min(map(len, vals)) <= 1
    by_id = {r.id: r for r in ds.images}
    strata = Counter(t.stratum(by_id[i]) for i in usable)
    for s, n in strata.items():  # each stratum spread as evenly as it can be
        per_fold = [sum(t.stratum(by_id[i]) == s for i in v) for v in vals]
        assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == n
    assert make_folds(ds, t, 3, seed=0) == folds  # deterministic
    assert [f.val for f in make_folds(ds, t, 3, seed=1)] != vals  # seeded
    with pytest.raises(ZooError, match="at least 2 folds"):
        make_folds(ds, t, 1)


def test_parse_seeds():
    assert parse_seeds("0, 1,2,1") == [0, 1, 2] and parse_seeds(None) is None
    with pytest.raises(ZooError, match="--seeds"):
        parse_seeds("a,b")


def test_cross_validated_leaderboard_is_mean_and_std_of_the_runs(tmp_path, tiny_demo, registry):
    opts = compare_options(task="detect", backends=["toy", "oracle"], registry=registry, seeds=[0, 1], samples=0,
                           data=tiny_demo, folds=2, flags={"device": "cpu"}, out=tmp_path / "runs")
    result = compare(opts)
    folder = result.folder
    assert len(result.runs) == 2 * 2 * 2 and {r.status for r in result.runs} == {"trained"}
    # the same fold split for every backend and seed: the compare's fold-<i>/split.json
    for r in result.runs:
        assert (r.run_dir / "split.json").read_text() == (folder / f"fold-{r.fold}" / "split.json").read_text()
        assert json.loads((r.run_dir / "manifest.json").read_text())["seed"] == r.seed
        assert r.run_dir.name == f"{r.backend}-detect-fold-{r.fold}-seed-{r.seed}"  # named by its cell
    with open(folder / "leaderboard.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 8 and [ln["backend"] for ln in lines[:4]] == ["oracle"] * 4
    for row in result.rows:
        runs = [json.loads((r.run_dir / "metrics.json").read_text()) for r in row.runs]
        main = runs[0]["main"]
        for k in (main, "AP50"):
            vals = [m[k] for m in runs]
            assert row.metrics[k] == pytest.approx(statistics.fmean(vals), abs=1e-12)
            assert row.metrics["std"][k] == pytest.approx(statistics.stdev(vals), abs=1e-12)
        mine = [ln for ln in lines if ln["backend"] == row.backend]
        assert sorted(float(ln[main]) for ln in mine) == pytest.approx(sorted(m[main] for m in runs), rel=1e-5)
    md = (folder / "leaderboard.md").read_text()
    toy = next(r for r in result.rows if r.backend == "toy")
    assert f"{toy.metrics['AP']:.3f} ± {toy.metrics['std']['AP']:.3f}" in md and "2-fold cross-validation" in md
    # finished runs are reused, cell by cell
    again = compare(opts)
    assert {r.status for r in again.runs} == {"reused"}
    assert [r.run_dir for r in again.runs] == [r.run_dir for r in result.runs]


def test_zoo_run_one_fold_is_the_compare_cell(tmp_path, tiny_demo, registry):
    from zoo.pipeline.run import execute

    done = execute(run_options(task="detect", backend="toy", registry=registry, quiet=True, data=tiny_demo,
                               fold=1, folds=2, flags={"device": "cpu"}, out=tmp_path / "runs"))
    result = compare(compare_options(task="detect", backends=["toy"], registry=registry, samples=0,
                                     data=tiny_demo, folds=2, flags={"device": "cpu"}, out=tmp_path / "runs"))
    cell = next(r for r in result.runs if r.fold == 1)
    assert cell.status == "reused" and cell.run_dir == done.run_dir
    with pytest.raises(ZooError, match="--fold 2: expected 0 to 1"):
        execute(run_options(task="detect", backend="toy", registry=registry, quiet=True, data=tiny_demo, fold=2,
                            folds=2, flags={"device": "cpu"}, out=tmp_path / "runs"))
