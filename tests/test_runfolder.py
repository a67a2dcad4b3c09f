"""The run folder as a type: its manifest's schema, and folders written by an older zoo."""

from __future__ import annotations

import json

import pytest
from flat_options import run_options
import toy_backend
from toy_backend import make_dataset

from zoo.errors import ZooError
from zoo.pipeline.run import execute
from zoo.pipeline.runfolder import Manifest, RunFolder


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished toy run (module-wide: the tests below copy what they change)."""
    tmp = tmp_path_factory.mktemp("runfolder")
    opts = run_options(task="detect", backend="toy", registry=toy_backend.registry(), quiet=True,
                       dataset=make_dataset(tmp / "data", n=8), flags={"device": "cpu"}, out=tmp / "runs")
    return execute(opts).run_dir


def _copy(run, tmp_path):
    import shutil

    return shutil.copytree(run, tmp_path / run.name)


def test_the_manifest_reads_back_as_written(finished):
    folder = RunFolder(finished)
    m = folder.manifest()
    assert m.backend == "toy" and m.task == "detect" and m.is_finished and m.trained
    assert m.done == ["prepare", "fit", "predict", "evaluate", "report"]
    assert m.timings.fit is not None and m.timings.predict_per_image_ms > 0
    assert list(m.checkpoints) == ["checkpoint/toy.json"]
    # the file is exactly the model's JSON: unset optional fields are left out, not null
    on_disk = json.loads(folder.manifest_file.read_text())
    assert on_disk == json.loads(json.dumps(m.to_dict()))
    assert "error" not in on_disk and "budget" not in on_disk
    assert folder.read_config()["device"] == "cpu"
    assert folder.read_meta().categories == json.loads(folder.meta_file.read_text())["categories"]


def test_an_older_manifest_without_a_newer_field_reads_and_keeps_unknown_keys(finished, tmp_path):
    run = _copy(finished, tmp_path)
    data = json.loads((run / "manifest.json").read_text())
    del data["checkpoints"], data["framework"], data["timings"]  # fields an older zoo did not write
    data["from_the_future"] = {"kept": True}
    data["versions"]["toy"] = None  # a backend that could not tell
    data["choices"] = {}
    (run / "manifest.json").write_text(json.dumps(data))
    folder = RunFolder(run)
    m = folder.manifest()
    assert m.checkpoints is None and not folder.ledger(m).tracked
    folder.write_manifest(m)
    assert json.loads((run / "manifest.json").read_text())["from_the_future"] == {"kept": True}


def test_a_checkpoint_being_replaced_reads_back(finished, tmp_path):
    # Ledger.expect records [old, new] until the write settles: a crash then leaves a list
    run = _copy(finished, tmp_path)
    data = json.loads((run / "manifest.json").read_text())
    data["checkpoints"]["checkpoint/toy.json"] = [data["checkpoints"]["checkpoint/toy.json"], "0" * 64]
    (run / "manifest.json").write_text(json.dumps(data))
    folder = RunFolder(run)
    assert folder.ledger(folder.manifest()).verify_all("checkpoint") == [run / "checkpoint" / "toy.json"]


def test_a_manifest_missing_what_zoo_needs_is_refused_in_one_line(finished, tmp_path):
    run = _copy(finished, tmp_path)
    data = json.loads((run / "manifest.json").read_text())
    del data["data"]
    data["zoo"] = "0.1.0"
    (run / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ZooError) as e:
        RunFolder(run).manifest()
    msg = str(e.value)
    assert "\n" not in msg and str(run / "manifest.json") in msg
    assert "zoo 0.1.0" in msg and "'data' is missing" in msg
    assert RunFolder(run).manifest_or_none() is None


@pytest.mark.parametrize("text, problem", [("[1, 2]", "expected a mapping"), ("a: [", "not valid YAML")])
def test_a_broken_config_is_one_clear_line(finished, tmp_path, text, problem):
    run = _copy(finished, tmp_path)
    (run / "config.yaml").write_text(text)
    with pytest.raises(ZooError, match=problem):
        RunFolder(run).read_config()



@pytest.mark.parametrize("task", ["detect", "semantic-seg", "classify"])
def test_saved_predictions_read_back_to_the_same_scores(tmp_path, task):
    # the oracle's predictions, written by the run and read back by zoo's one reader
    # (zoo.evaluation.results.read_predictions), score what metrics.json says
    from zoo.predictions import score_predictions
    from zoo.tasks import get_task

    data = make_dataset(tmp_path / "data", n=8)
    run = execute(run_options(task=task, backend="oracle", registry=toy_backend.registry(), quiet=True,
                              dataset=data, val=0.5, flags={"device": "cpu"}, out=tmp_path / "runs")).run_dir
    folder = RunFolder(run)
    val = data.subset(folder.read_split().val)
    preds = folder.load_predictions(val)
    assert [p.image_id for p in preds] == [r.id for r in val.images]
    metrics, _ = score_predictions(get_task(task), val, preds)
    saved = folder.read_metrics()
    assert metrics[saved["main"]] == pytest.approx(saved[saved["main"]]) == pytest.approx(1.0)
