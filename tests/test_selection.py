"""One model-selection protocol for every backend (zoo.selection): the selection split is
carved from train, ``best`` keeps the epoch zoo's evaluator scores best there, ``last``
scores nothing, the scored split never reaches fit, compare never mixes protocols."""

from __future__ import annotations

import json

import pytest
from flat_options import compare_options, run_options
import toy_backend
import yaml
from toy_backend import make_dataset

from zoo.cli.views import leaderboard_table
from zoo.pipeline.compare import compare
from zoo.pipeline.leaderboard import Row, check_one_protocol
from zoo.dataset import Dataset, ImageRecord
from zoo.errors import ZooError
from zoo.pipeline.run import execute
from zoo.selection import Protocol, Selection
from zoo.tasks import get_task
from zoo.testing import check_backend


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("seldata"), n=20)


@pytest.fixture(scope="module")
def registry():
    return toy_backend.registry()


def test_protocol_is_validated_and_described():
    assert Protocol().to_dict() == {"rule": "last", "selection_fraction": 0.0, "patience": None}
    assert not Protocol().scores and Protocol(patience=3).scores and Protocol("best").scores
    assert "nothing scored" in Protocol().describe()
    assert "10% of the training images" in Protocol("best").describe()
    for bad in (dict(rule="max"), dict(fraction=1.0), dict(patience=0)):
        with pytest.raises(ZooError):
            Protocol(**bad)


def test_run_with_select_best_records_the_protocol(tmp_path, data, registry):
    result = execute(run_options(task="detect", backend="toy", registry=registry, quiet=True, dataset=data,
                                 flags={"device": "cpu"}, out=tmp_path / "runs", select="best"))
    run = result.run_dir
    split = json.loads((run / "split.json").read_text())
    assert len(split["selection"]) == 2 and split["selection_fraction"] == 0.1  # 10% of 16 train
    assert not set(split["selection"]) & set(split["val"]) and not set(split["selection"]) & set(split["train"])
    m = result.manifest
    assert m.split.selection == 2
    assert m.selection["protocol"] == {"rule": "best", "selection_fraction": 0.1, "patience": None}
    assert m.selection["selection_images"] == 2
    conv = result.metrics["conventions"]["model selection"]
    assert conv.startswith("best epoch on a selection split") and "selection split 2 image(s)" in conv
    report = (run / "report.md").read_text()
    assert "Model selection: best epoch" in report and "selection 2 (carved from train)" in report
    assert "--select best --select-frac 0.1" in report
    # --resume keeps the run's protocol and refuses another
    with pytest.raises(ZooError, match="model selection was best epoch"):
        execute(run_options(task="detect", backend="toy", registry=registry, quiet=True, dataset=data,
                            flags={"device": "cpu"}, out=tmp_path / "runs", name=run.name, resume=True,
                            select="last"))


def test_the_scored_split_never_reaches_fit(tmp_path, data, registry):
    # Instrumented: check_backend traces every file opened while fit runs.
    report = check_backend("toy", "detect", tmp_path / "ok", dataset=data, registry=registry)
    assert report.predictions
    with pytest.raises(AssertionError, match="peeker: fit\\(\\) read 5 image\\(s\\) of the scored split"):
        check_backend("peeker", "detect", tmp_path / "cheat", dataset=data, registry=registry)


def test_a_broken_rule_fails_its_own_check_only(tmp_path, data, registry):
    # the peeker reads scored images in fit(): that check fails, by name; the rest of the
    # contract holds, and each check reads the one training
    from zoo.testing import CHECKS, Conformance, check_fit_reads_no_scored_image

    case = Conformance("peeker", "detect", tmp_path, dataset=data, registry=registry)
    failed = []
    for check in CHECKS:
        try:
            check(case)
        except AssertionError as e:
            failed.append((check, str(e)))
    assert [check for check, _ in failed] == [check_fit_reads_no_scored_image]
    assert "peeker: fit() read 5 image(s) of the scored split" in failed[0][1]


def _real_classify_run(tmp_path, tiny_demo, **kw):
    pytest.importorskip("torchvision")
    return execute(run_options(task="classify", backend="resnet18", data=tiny_demo, out=tmp_path / "runs", quiet=True,
                               flags={"device": "cpu", "epochs": 3, "imgsz": 32, "batch": 4}, **kw))


@pytest.mark.slow
def test_select_best_keeps_the_epoch_scored_best_on_the_selection_split(tmp_path, tiny_demo):
    import torch

    result = _real_classify_run(tmp_path, tiny_demo, select="best", select_frac=0.3)
    sel = result.manifest.selection
    split = json.loads((result.run_dir / "split.json").read_text())
    assert sel["selection_images"] == len(split["selection"]) == 3 and sel["times_scored"] == 3
    scores = {s["epoch"]: s["score"] for s in sel["scores"]}
    assert sorted(scores) == [1, 2, 3]
    assert sel["chosen_epoch"] == max(scores, key=lambda e: (scores[e], e))  # ties: the later epoch
    best = torch.load(result.run_dir / "checkpoint" / "best.pt", weights_only=True)
    assert best["epoch"] + 1 == sel["chosen_epoch"]
    # the recorded score is zoo's evaluator on the selection images, for the weights kept
    from zoo.backend import RunContext
    from zoo.config import resolve_config
    from zoo.registry import get_registry
    from zoo.data.reading import read_dataset
    from zoo.dataset import strip_annotations

    ds, task = read_dataset(tiny_demo), get_task("classify")
    Resnet18 = get_registry().backend("resnet18").load()
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    cfg = resolve_config(Resnet18.Config, backend="resnet18", task="classify", base=saved, flags={"device": "cpu"})
    kept = Resnet18.load(task, ds.meta(), cfg, RunContext(run_dir=result.run_dir))
    selection = Selection(Protocol("best"), ds.subset(split["selection"]), task)
    again = selection.score(kept.predict(strip_annotations(selection.data)))
    assert again == pytest.approx(scores[sel["chosen_epoch"]], abs=1e-6)  # the manifest keeps 6 decimals


@pytest.mark.slow
def test_select_last_scores_nothing_during_training(tmp_path, tiny_demo, monkeypatch):
    import torch

    calls = []
    original = Selection.score
    monkeypatch.setattr(Selection, "score", lambda self, preds: calls.append(1) or original(self, preds))
    result = _real_classify_run(tmp_path, tiny_demo, select="last")
    assert calls == []
    sel = result.manifest.selection
    assert sel["times_scored"] == 0 and sel["selection_images"] == 0 and sel["chosen_epoch"] == 3
    assert json.loads((result.run_dir / "split.json").read_text())["selection"] == []
    ckpt = result.run_dir / "checkpoint"
    assert not (ckpt / "best.pt").exists()
    assert not any("val" in row for row in torch.load(ckpt / "last.pt", weights_only=True)["history"])
    assert "nothing scored during training" in result.metrics["conventions"]["model selection"]


def test_compare_states_one_protocol_and_refuses_to_mix(tmp_path, tiny_demo, registry):
    opts = dict(task="detect", backends=["toy", "oracle"], data=tiny_demo, out=tmp_path / "runs",
                registry=registry, flags={"device": "cpu"})
    best = compare(compare_options(**opts, select="best"))
    md = (best.folder / "leaderboard.md").read_text()
    assert "Model selection, the same for every backend: best epoch on a selection split" in md
    assert json.loads((best.folder / "compare.json").read_text())["selection"]["rule"] == "best"
    assert "model selection, every backend: best epoch" in leaderboard_table(best).caption  # on screen
    # another protocol is another experiment: nothing is reused across protocols
    last = compare(compare_options(**opts))
    assert {r.status for r in last.rows} == {"trained"}
    assert "last epoch (final weights); nothing scored during training" in (last.folder / "leaderboard.md").read_text()
    # runs made under different protocols never share a leaderboard
    mixed = [Row(r.backend, r.status, r.run_dir, r.metrics, r.manifest) for r in (best.rows[0], last.rows[1])]
    with pytest.raises(ZooError, match="different model-selection protocols"):
        check_one_protocol(mixed, Protocol("best").to_dict())
    check_one_protocol(best.rows, Protocol("best").to_dict())


def test_training_loop_follows_the_protocol(tmp_path):
    torch = pytest.importorskip("torch")
    from zoo.training import BEST, TrainConfig, criterion_loss, fit, load_checkpoint

    x = torch.randn(16, 2)
    batches = [(x[:8], (x[:8, 0] > 0).long()), (x[8:], (x[8:, 0] > 0).long())]
    task = get_task("classify")
    one = Dataset(classes=["a"], images=[ImageRecord(id="s", width=1, height=1, labels=[0])])

    def run(protocol, scores, epochs=6, folder="a"):
        it = iter(scores)
        calls = []
        selection = Selection(protocol, one, task)
        result = fit(torch.nn.Linear(2, 2), batches, config=TrainConfig(epochs=epochs, lr=0.01),
                     loss_fn=criterion_loss(torch.nn.CrossEntropyLoss()), selection=selection,
                     val_fn=lambda m: calls.append(1) or next(it), checkpoint_dir=tmp_path / folder)
        return result, selection, calls

    # best + patience 2: epochs 1..4 scored, the best is epoch 2, stopped 2 epochs later
    result, sel, calls = run(Protocol("best", patience=2), [0.5, 0.7, 0.6, 0.7 - 1e-3, 0.9, 0.9])
    assert len(calls) == 4 and len(result.history) == 4
    assert sel.chosen_epoch == 1 == result.best_epoch and sel.stopped_after == 3
    assert load_checkpoint(tmp_path / "a" / BEST)["epoch"] == 1
    # last + patience: the same stop, the last weights kept
    result, sel, calls = run(Protocol("last", patience=2), [0.5, 0.7, 0.6, 0.6, 0.9], folder="b")
    assert len(calls) == 4 and sel.chosen_epoch == 3 and not (tmp_path / "b" / BEST).exists()
    # last alone: val_fn never runs
    result, sel, calls = run(Protocol("last"), [], epochs=2, folder="c")
    assert calls == [] and sel.scored == [] and sel.chosen_epoch == 1
