"""`zoo compare` with the framework-free toy backends: one split, one leaderboard, whose scores
are exactly each run's metrics.json; failures get a row; finished runs are reused."""

from __future__ import annotations

import csv
import json

import pytest
from flat_options import compare_options, run_options
import toy_backend

import zoo.registry
from zoo.cli import main
from zoo.pipeline.compare import compare, split_sets
from zoo.errors import ZooError


@pytest.fixture(scope="module")
def registry():
    return toy_backend.registry()


def _opts(tmp_path, data, registry, **kw):
    base = dict(task="detect", backends=["toy", "oracle"], data=data, out=tmp_path / "runs",
                registry=registry, flags={"device": "cpu"})
    base.update(kw)
    return compare_options(**base)


def _leaderboard(folder):
    with open(folder / "leaderboard.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("task", ["detect", "instance-seg", "semantic-seg", "classify"])
def test_leaderboard_scores_equal_each_runs_metrics(tmp_path, tiny_demo, registry, task):
    result = compare(_opts(tmp_path, tiny_demo, registry, task=task, backends=["toy", "oracle", "broken"]))
    folder = tmp_path / "runs" / "compare" / task
    assert result.folder == folder
    rows = _leaderboard(folder)
    assert [r["backend"] for r in rows] == ["oracle", "toy", "broken"]  # ranked, failure last
    for row in rows[:2]:
        run = tmp_path / "runs" / f"{row['backend']}-{task}"
        assert row["run"] == str(run) and row["status"] == "trained"
        metrics = json.loads((run / "metrics.json").read_text())
        scores = {k: v for k, v in metrics.items() if isinstance(v, float)}
        assert scores, metrics
        for k, v in scores.items():
            assert float(row[k]) == pytest.approx(v, rel=1e-5), k
        for cname, vals in metrics["per_class"].items():
            for k, v in vals.items():
                if isinstance(v, float):
                    assert float(row[f"{k} {cname}"]) == pytest.approx(v, rel=1e-5)
                elif v is None:
                    assert row[f"{k} {cname}"] == ""
        manifest = json.loads((run / "manifest.json").read_text())
        if task in ("detect", "instance-seg"):
            # the overlaid PR curve comes from the same evaluation: its mean is the run's AP50
            from zoo.pipeline.compare_plots import pr_curve_points
            from zoo.data.reading import read_dataset
            from zoo.tasks import get_task

            val = read_dataset(tiny_demo).subset(json.loads((run / "split.json").read_text())["val"])
            _, precision = pr_curve_points(run, get_task(task), val)
            assert precision.clip(0, None).mean() == pytest.approx(metrics["AP50"], abs=1e-9)
        assert row["device"] == "cpu" and int(row["parameters"]) == manifest["parameters"]
    main = json.loads((tmp_path / "runs" / f"oracle-{task}" / "metrics.json").read_text())["main"]
    assert float(rows[0][main]) == pytest.approx(1.0)
    assert rows[2]["status"] == "failed" and "broken on purpose" in rows[2]["error"]
    assert "broken on purpose" in (folder / "errors" / "broken.txt").read_text()
    # every backend saw the same split: the compare's own
    split = (folder / "split.json").read_text()
    for b in ("toy", "oracle"):
        assert (tmp_path / "runs" / f"{b}-{task}" / "split.json").read_text() == split
    md = (folder / "leaderboard.md").read_text()
    assert "| 1 | oracle |" in md and "failed: RuntimeError: broken on purpose" in md
    assert (folder / "scores.png").stat().st_size > 1000
    assert (folder / "samples.png").stat().st_size > 1000
    assert (folder / "pr_curves.png").is_file() == (task in ("detect", "instance-seg"))


def test_finished_runs_are_reused_unless_rerun(tmp_path, tiny_demo, registry):
    first = compare(_opts(tmp_path, tiny_demo, registry, samples=0))
    assert {r.status for r in first.rows} == {"trained"}
    again = compare(_opts(tmp_path, tiny_demo, registry, samples=0))
    assert {r.status for r in again.rows} == {"reused"}
    assert [r.run_dir for r in again.rows] == [r.run_dir for r in first.rows]
    assert [r.metrics for r in again.rows] == [r.metrics for r in first.rows]
    # another config is another experiment: toy retrains, oracle is reused
    third = compare(_opts(tmp_path, tiny_demo, registry, sets=["toy.epochs=3"], samples=0))
    status = {r.backend: (r.status, r.run_dir.name) for r in third.rows}
    assert status == {"toy": ("trained", "toy-detect-2"), "oracle": ("reused", "oracle-detect")}
    fourth = compare(_opts(tmp_path, tiny_demo, registry, rerun=True, samples=0))
    assert {r.status for r in fourth.rows} == {"trained"}
    assert sorted(r.run_dir.name for r in fourth.rows) == ["oracle-detect-2", "toy-detect-3"]


def test_a_backend_that_is_not_installed_gets_a_row(tmp_path, tiny_demo, registry, capsys):
    from zoo.cli.views import print_leaderboard

    result = compare(_opts(tmp_path, tiny_demo, registry, backends=["absent", "toy", "unimportable"]))
    print_leaderboard(result)
    out = " ".join(capsys.readouterr().out.split())
    assert "pip install 'zoo[absent]'" in out  # shown as text, not eaten as rich markup
    by = {r.backend: r for r in result.rows}
    assert by["toy"].ok and not by["absent"].ok
    assert "no_such_module_zoo" in by["absent"].error and "pip install 'zoo[absent]'" in by["absent"].error
    assert not by["unimportable"].ok and "NoSuchClass" in by["unimportable"].error


def test_scoped_sets():
    assert split_sets(["epochs=2", "unet.encoder=resnet18", "deeplabv3+.encoder=x"], ["unet", "deeplabv3+"]) == {
        "unet": ["epochs=2", "encoder=resnet18"], "deeplabv3+": ["epochs=2", "encoder=x"]}
    with pytest.raises(ZooError, match="'yolo' is not one of the compared backends"):
        split_sets(["yolo.model=s"], ["unet"])


def test_user_errors_fail_before_training(tmp_path, tiny_demo, registry):
    with pytest.raises(ZooError, match="unknown backend 'tyo'"):
        compare(_opts(tmp_path, tiny_demo, registry, backends=["toy", "tyo"]))
    with pytest.raises(ZooError, match="did you mean 'mode'"):
        compare(_opts(tmp_path, tiny_demo, registry, sets=["mdoe=oracle"]))
    assert not (tmp_path / "runs").exists()


def test_compare_cli(tmp_path, tiny_demo, registry, monkeypatch, capsys):
    monkeypatch.setattr(zoo.registry, "get_registry", lambda: registry)
    main(["compare", "--task", "keypoint", "--backends", "toy,oracle", "--data", str(tiny_demo),
          "--out", str(tmp_path / "runs"), "--device", "cpu", "--seed", "1", "--samples", "2"])
    out = capsys.readouterr().out
    assert "oracle" in out and "1.000" in out
    rows = _leaderboard(tmp_path / "runs" / "compare" / "keypoint")
    assert rows[0]["backend"] == "oracle" and float(rows[0]["AP"]) == pytest.approx(1.0)
    assert json.loads((tmp_path / "runs" / "toy-keypoint" / "manifest.json").read_text())["seed"] == 1

    with pytest.raises(SystemExit) as e:
        main(["compare", "--task", "detect", "--backends", "toy,nope", "--data", str(tiny_demo),
              "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("zoo: error: unknown backend 'nope'") and "Traceback" not in err


def test_a_zoo_run_with_the_same_settings_is_reused(tmp_path, tiny_demo, registry):
    from zoo.pipeline.run import execute

    done = execute(run_options(task="detect", backend="oracle", registry=registry, quiet=True, data=tiny_demo,
                               flags={"device": "cpu"}, out=tmp_path / "runs", name="mine"))
    result = compare(_opts(tmp_path, tiny_demo, registry))
    by = {r.backend: r for r in result.rows}
    assert by["oracle"].status == "reused" and by["oracle"].run_dir == done.run_dir
    assert by["toy"].status == "trained"


def test_the_ground_truth_is_converted_once_per_compare(tmp_path, tiny_demo, registry, monkeypatch):
    """The PR curves and the paired verdict's re-scoring of every run share one conversion of
    the val images to COCO (zoo.evaluation.coco.GroundTruth), with no cache between compares."""
    import zoo.evaluation.coco as coco

    opts = _opts(tmp_path, tiny_demo, registry, task="instance-seg", samples=0)
    compare(opts)  # trains both runs; the second compare reuses them, so it converts only its own
    converted = []
    real = coco.evaluation_ground_truth
    monkeypatch.setattr(coco, "evaluation_ground_truth", lambda ds, *a, **kw: converted.append(a) or real(ds, *a, **kw))
    result = compare(opts)
    assert {r.status for r in result.rows} == {"reused"} and set(result.verdicts) == {"toy"}
    assert (result.folder / "pr_curves.png").is_file()
    assert converted == [("segm", "zoo")]
