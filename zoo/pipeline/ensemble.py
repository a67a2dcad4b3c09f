"""Fold ensembles: the K models of a cross-validation predict together, as nnU-Net deploys them.

After ``zoo compare --folds K --test F`` every backend has K fold models (K x S with
``--seeds``), each scored once on the same held-out test images. The ensemble of a
backend's models predicts those test images by one rule per task (:data:`RULES`, stated in
the ensemble's ``conventions``), the shared evaluator scores it, and it is set beside the
single fold models on the same test images: their mean ± std, the best of them, and the
paired verdict ensemble vs that best fold (:func:`zoo.pipeline.verdict.paired`: a paired
bootstrap over the test images).

Written to ``COMPARE_DIR/ensemble/<backend>/``: ``metrics.json`` (the ensemble's test scores
under ``test``, with the members, the rule, the single folds and the verdict) and
``predictions/test/`` in the task's exchange format (``zoo eval`` scores it).

The rules (:mod:`zoo.pipeline.fusion` fuses instances):

* semantic-seg: the mean of the models' softmax per pixel at the image's size, then argmax
  (nnU-Net's ensembling of folds); needs ``Backend.predict_probabilities``;
* classify: the mean of the models' class probabilities (``ClassPrediction.scores``), then argmax;
* detect / instance-seg / keypoint: see :mod:`zoo.pipeline.fusion`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.atomic import read_json, write_json
from zoo.backend import Unsupported
from zoo.data.folds import mean_std
from zoo.dataset import Dataset, ImageRecord, strip_annotations
from zoo.errors import ZooError
from zoo.evaluation import bootstrap, evaluate
from zoo.pipeline.artifacts import checked_onnx
from zoo.pipeline.fusion import RULES as INSTANCE_RULES, fuse_instances
from zoo.pipeline.predict import load_backend, recorded_intensity
from zoo.pipeline.reread import run_images
from zoo.pipeline.runfolder import RunFolder
from zoo.pipeline.verdict import paired
from zoo.predictions import ClassPrediction, SemanticPrediction, check_predictions, score_predictions
from zoo.progress import LogReporter, Reporter

RULES = {
    "semantic-seg": "ensemble of K: the mean of the K models' softmax probabilities per pixel, at the image's own "
                    "size, then the argmax (nnU-Net's rule for its folds)",
    "classify": "ensemble of K: the mean of the K models' class probabilities, then the argmax",
}
#: images predicted by every member before their predictions are fused (bounds the memory
#: of K probability maps per image)
CHUNK = 8


@dataclass
class EnsembleResult:
    """A backend's ensemble of its fold models on the test split, beside the single folds."""

    backend: str
    members: list[Path]
    metrics: dict[str, Any]  # the shared evaluator's, on test
    main: str
    singles: list[float]  # each member's own test score (its run's metrics.json), in members' order
    verdict: Any = None  # zoo.pipeline.verdict.Verdict: ensemble minus the best single fold
    out: Path | None = None
    rule: str = ""

    @property
    def score(self) -> float:
        return float(self.metrics[self.main])

    @property
    def best_single(self) -> float:
        return max(self.singles)

    def summary(self) -> dict[str, Any]:
        mean, std = mean_std(self.singles)
        return {"backend": self.backend, "members": [str(p) for p in self.members], "k": len(self.members),
                "rule": self.rule, "split": "test", "main": self.main, "ensemble": self.score,
                "singles": self.singles, "singles_mean": mean, "singles_std": std, "best_single": self.best_single,
                "best_single_run": str(self.members[self.singles.index(self.best_single)]),
                "verdict": None if self.verdict is None else {
                    "difference": self.verdict.difference, "ci95": self.verdict.ci95,
                    "p_ensemble_better": self.verdict.p_better, "distinguishable": self.verdict.distinguishable,
                    "what": "ensemble minus the best single fold, paired bootstrap over the test images"}}


# -- the members ---------------------------------------------------------------------------------


def member_runs(compare_dir: Path, backend: str) -> list[Path]:
    """The finished runs of ``backend`` in a ``zoo compare`` folder (compare.json), fold by fold."""
    board = Path(compare_dir) / "compare.json"
    if not board.is_file():
        raise ZooError(f"{compare_dir}: not a zoo compare folder (no compare.json); --ensemble fuses the fold "
                       "models of `zoo compare --folds K --test F`")
    try:
        doc = read_json(board)
        runs = [r for r in doc["runs"] if r["backend"] == backend]
    except (OSError, ValueError, KeyError, TypeError):
        raise ZooError(f"{board}: not a zoo compare.json") from None
    if not runs:
        raise ZooError(f"{board}: no run of backend '{backend}' (compared: {', '.join(doc.get('backends', []))})")
    failed = [r for r in runs if r.get("status") == "failed" or not r.get("run")]
    if failed:
        raise ZooError(f"{board}: {len(failed)} of {backend}'s {len(runs)} runs failed; an ensemble needs them all")
    if len(runs) < 2:
        raise ZooError(f"{board}: {backend} has one run; an ensemble needs the K fold runs of `--folds K`")
    return [Path(r["run"]) for r in sorted(runs, key=lambda r: (r.get("fold") or 0, r.get("seed") or 0))]


def load_members(runs: Sequence[Path], device: str = "cpu", registry=None,
                 onnx: Sequence[Path] | None = None) -> tuple[list, Any, Dataset, str]:
    """Each run's trained backend (checkpoints checked), and their task, meta and backend name;
    ``onnx``: each run's export folder, its graph run by onnxruntime instead."""
    members, first = [], None
    for i, run in enumerate(runs):
        graph = checked_onnx(onnx[i], run) if onnx is not None else None
        backend, task, meta, name = load_backend(run, device, registry, onnx=graph)
        backend = Member(backend, recorded_intensity(run))
        if first is None:
            first = (task, meta, name)
        elif (task.name, meta.categories, meta.classes) != (first[0].name, first[1].categories, first[1].classes):
            raise ZooError(f"{run}: another task or vocabulary than {runs[0]}; an ensemble needs one model's K folds")
        members.append(backend)
    return members, *first


class Member:
    """One fold model, decoding every image with its own run's intensity rule (each fold
    fitted its rule on its own training images; zoo.data.intensity)."""

    def __init__(self, backend, intensity=None):
        self.backend, self.intensity = backend, intensity

    def _as_trained(self, images: Sequence[ImageRecord]) -> list[ImageRecord]:
        from dataclasses import replace

        return [replace(r, intensity=self.intensity) for r in images]

    def predict(self, images: Sequence[ImageRecord]) -> Iterator:
        return self.backend.predict(self._as_trained(images))

    def predict_probabilities(self, images: Sequence[ImageRecord]) -> Iterator:
        return self.backend.predict_probabilities(self._as_trained(images))


class Ensemble:
    """The members predicting as one model (``predict`` as a backend's): what ``zoo predict
    --ensemble`` runs on new images."""

    def __init__(self, members: Sequence, task, meta: Dataset):
        self.members, self.task, self.meta = list(members), task, meta

    def predict(self, images: Sequence[ImageRecord]) -> Iterator:
        return ensemble_predict(self.members, self.task, images, self.meta)


def load_ensemble(compare_dir: Path, backend: str, device: str = "cpu", registry=None,
                  onnx_dir: Path | None = None):
    """``(Ensemble, task, meta, name)`` of ``backend``'s fold models in a compare folder;
    ``onnx_dir``: the ensemble's ``zoo export`` folder, each member's graph run by onnxruntime."""
    runs = member_runs(compare_dir, backend)
    graphs = None if onnx_dir is None else [Path(onnx_dir) / f"member-{i}" for i in range(len(runs))]
    members, task, meta, name = load_members(runs, device, registry, onnx=graphs)
    engine = "" if onnx_dir is None else ", onnxruntime"
    return Ensemble(members, task, meta), task, meta, f"{name} (ensemble of {len(members)}{engine})"


# -- fusion ------------------------------------------------------------------------------------


def ensemble_predict(members: Sequence, task, images: Sequence[ImageRecord], meta: Dataset) -> Iterator:
    """The ensemble's prediction of each image, in order (:data:`RULES`)."""
    fuse = _fuser(task.name)
    for start in range(0, len(images), CHUNK):
        chunk = list(images[start : start + CHUNK])
        yield from fuse(members, chunk, meta)


def _fuser(task_name: str):
    if task_name == "semantic-seg":
        return fuse_semantic
    if task_name == "classify":
        return fuse_classify
    return fuse_instances


def mean_probabilities(per_model: Sequence) -> Any:
    """The elementwise mean of K same-shaped probability arrays (float64 sum: K identical
    members give the member's own probabilities back, exactly)."""
    import numpy as np

    total = np.zeros(np.shape(per_model[0]), np.float64)
    for p in per_model:
        total += p
    return total / len(per_model)


def fuse_semantic(members: Sequence, images: list[ImageRecord], meta: Dataset) -> Iterator:
    import numpy as np

    try:
        per_model = [list(m.predict_probabilities(images)) for m in members]
    except Unsupported as e:
        raise ZooError(f"a semantic-seg ensemble averages softmax probabilities: {e}") from None
    dtype = np.uint8 if len(meta.categories) < 255 else np.int32
    for i, record in enumerate(images):
        mean = mean_probabilities([probs[i] for probs in per_model])
        yield SemanticPrediction(image_id=record.id, label_map=mean.argmax(0).astype(dtype))


def fuse_classify(members: Sequence, images: list[ImageRecord], meta: Dataset) -> Iterator:
    per_model = [list(m.predict(images)) for m in members]
    for i, record in enumerate(images):
        preds = [p[i] for p in per_model]
        if any(p.scores is None for p in preds):
            raise ZooError("a classify ensemble averages class probabilities, and a member gives none")
        mean = mean_probabilities([p.scores for p in preds])
        yield ClassPrediction(image_id=record.id, label=int(mean.argmax()), scores=[float(v) for v in mean])


# -- scoring on the test split -------------------------------------------------------------------


def score_ensemble(compare_dir: Path, backend: str, *, device: str = "cpu", registry=None,
                   reporter: Reporter | None = None) -> EnsembleResult:
    """``zoo predict --run COMPARE_DIR --backend B --ensemble``: the ensemble of B's fold models
    on the compare's test split, scored and set beside the single folds (module doc)."""
    return score_members(member_runs(compare_dir, backend), Path(compare_dir) / "ensemble", device=device,
                         registry=registry, reporter=reporter)


def score_members(runs: Sequence[Path], out: Path, *, device: str = "cpu", registry=None,
                  reporter: Reporter | None = None) -> EnsembleResult:
    """The ensemble of ``runs`` (one backend's fold runs) on their shared test split, written
    to ``out/<backend>/``."""
    reporter = reporter or LogReporter()
    test = test_images(runs)
    members, task, meta, name = load_members(runs, device, registry)
    images = strip_annotations(test)
    reporter.say(f"{name}: the ensemble of {len(members)} fold models predicts {len(images)} test image(s) ...")
    preds = list(reporter.track(ensemble_predict(members, task, images, meta), "ensemble", total=len(images)))
    check_predictions(task, f"{name} ensemble", images, preds, meta)
    metrics = evaluate(task, test, preds, ci95=True)
    rule = rule_of(task.name)
    metrics.setdefault("conventions", {})["ensemble"] = rule
    main = metrics["main"]
    singles = [_test_score(run, main) for run in runs]
    result = EnsembleResult(name, list(runs), metrics, main, singles, rule=rule)
    result.verdict = _verdict(task, test, preds, runs[singles.index(max(singles))], main,
                              result.score - max(singles), name)
    result.out = _write(Path(out) / name, task, test, preds, result)
    return result


def rule_of(task_name: str) -> str:
    if task_name in RULES:
        return RULES[task_name]
    return INSTANCE_RULES[task_name]


def test_images(runs: Sequence[Path]) -> Dataset:
    """The test split the members share (every fold's split.json holds the same one)."""
    tests = {tuple(RunFolder(r).read_split().test or []) for r in runs}
    if tests == {()}:
        raise ZooError(f"{runs[0].parent}: the fold runs have no test split; an ensemble is scored on held-out "
                       "images: zoo compare --folds K --test 0.2 --ensemble")
    if len(tests) > 1:
        raise ZooError("the fold runs hold different test splits; an ensemble needs the folds of one compare")
    return run_images(runs[0], "test")


def _test_score(run: Path, main: str) -> float:
    test = RunFolder(run).read_metrics().get("test") or {}
    if not isinstance(test.get(main), (int, float)):
        raise ZooError(f"{run}: no {main} on its test split in metrics.json")
    return float(test[main])


def _verdict(task, test: Dataset, preds: list, best_run: Path, main: str, observed: float, name: str):
    """Ensemble vs the best single fold: a paired bootstrap over the test images, each side
    re-aggregated from its own per-image results (the best fold's from its saved predictions)."""
    scored = sum(1 for r in test.images if task.is_annotated(r))
    weights = bootstrap.image_weights(scored)
    _, ens = score_predictions(task, test, preds, ci95=True)
    _, single = score_predictions(task, test, RunFolder(best_run).load_predictions(test, split="test", task=task),
                                  ci95=True)
    return paired(ens.resampled(weights)[main], single.resampled(weights)[main], observed, name)


def _write(out: Path, task, test: Dataset, preds: list, result: EnsembleResult) -> Path:
    folder = RunFolder(out)
    folder.save_predictions(task, preds, test, split="test")
    write_json(folder.metrics_file, {"task": task.name, "ensemble": result.summary(), "test": result.metrics})
    return out


def compare_ensembles(folder: Path, runs: Sequence, reporter: Reporter, device: str = "cpu",
                      registry=None) -> list[EnsembleResult]:
    """``zoo compare --folds K --test F --ensemble``: each backend whose runs all finished gets
    its ensemble (``runs``: the compare's rows, one per run); one that cannot is a warning."""
    out = []
    for backend in dict.fromkeys(r.backend for r in runs):
        mine = [r for r in runs if r.backend == backend]
        if any(not r.ok or r.run_dir is None for r in mine) or len(mine) < 2:
            reporter.warn(f"{backend}: no ensemble (it needs every one of its fold runs finished)")
            continue
        try:
            out.append(score_members([r.run_dir for r in mine], Path(folder) / "ensemble", device=device,
                                     registry=registry, reporter=reporter))
        except ZooError as e:
            reporter.warn(f"{backend}: no ensemble ({e})")
    return out


def fmt_verdict(v: dict[str, Any] | None) -> str:
    """``+0.011 (+0.002–+0.020), P 0.99``: ensemble minus the best single fold; '' without one."""
    if v is None:
        return ""
    ci = f" ({v['ci95'][0]:+.3f}–{v['ci95'][1]:+.3f})" if v["ci95"] else ""
    p = f", P {v['p_ensemble_better']:.2f}" if v["p_ensemble_better"] is not None else ""
    return f"{v['difference']:+.3f}{ci}{p}"


def leaderboard_lines(ensembles: Sequence[EnsembleResult]) -> list[str]:
    """The leaderboard's section: per backend, the ensemble of K beside its single folds on
    the same test images, and the paired verdict ensemble vs the best single fold."""
    if not ensembles:
        return []
    main = ensembles[0].main
    lines = ["## Fold ensembles, on the test split", "",
             f"Each backend's K fold models predict the held-out test images together ({ensembles[0].rule}); "
             f"beside it, the same test images scored by each fold model alone.", "",
             f"| backend | ensemble of K, **{main}** test | single folds, mean ± std | best single fold | "
             "ensemble − best fold (95%), P(ensemble better) |", "|---|---|---|---|---|"]
    for e in ensembles:
        s = e.summary()
        std = f" ± {s['singles_std']:.3f}" if s["singles_std"] is not None else ""
        lines.append(f"| {e.backend} | ensemble of {s['k']}: {s['ensemble']:.3f} | {s['singles_mean']:.3f}{std} | "
                     f"{s['best_single']:.3f} ({Path(s['best_single_run']).name}) | {fmt_verdict(s['verdict']) or '–'} |")
    return [*lines, ""]
