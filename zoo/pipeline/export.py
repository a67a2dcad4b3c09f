"""``zoo export``: a finished run's network as ONNX, with its parity proven on the run's val split.

What a run exports to (``--out``, default ``RUN/export/onnx/``)::

    model.onnx          the network (Backend.export_onnx); what runs outside it is in model.json
    model.json          task, classes, keypoints, the input (size, colour order, the intensity
                        rule, normalisation), the output, the post-processing outside the graph,
                        the sha256 of model.onnx, and the parity and timings below
    predictions/        the ONNX model's val predictions in the run's exchange format, which
                        ``zoo eval --gt RUN/data/val_coco.json --pred ...`` scores

Parity: the torch backend (``Backend.load``) and the ONNX one (``Backend.load_onnx``: the same
pre- and post-processing, only the network run by onnxruntime) predict the run's val images;
the shared evaluator scores both, and the main metrics must agree within
:data:`METRIC_TOLERANCE`. The raw outputs are compared by the backend on a few val images
(``raw_parity``: :mod:`zoo.training.onnx` states the rule). Both engines' milliseconds per image
(decode, pre-processing, network, post-processing) are measured on the same images, one after
the other, and written beside each other.

``--run`` may name a ``zoo compare`` folder: the leaderboard's winner is exported
(:func:`zoo.pipeline.artifacts.winner`), and the result says which; a cross-validated compare's
winner is the ensemble of its fold models (:func:`export_ensemble`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo import __version__
from zoo.atomic import write_json
from zoo.backend import Unsupported
from zoo.checksums import sha256_file
from zoo.dataset import Dataset, strip_annotations
from zoo.errors import ZooError
from zoo.evaluation import evaluate
from zoo.pipeline.artifacts import CARD_FILE, MODEL_FILE, checkpoints_of, winner
from zoo.pipeline.ensemble import Ensemble, load_members, member_runs, rule_of, test_images
from zoo.pipeline.predict import load_backend
from zoo.pipeline.reread import run_images
from zoo.pipeline.runfolder import RunFolder
from zoo.progress import LogReporter, Reporter

#: the ONNX model's main metric on the run's val split may differ from torch's by this much
METRIC_TOLERANCE = 1e-3
#: how many val images the graph is traced on and its raw outputs compared on
SAMPLE_IMAGES = 2
FORMATS = ("onnx",)


@dataclass
class Parity:
    """The torch and ONNX predictions of the run's val split, scored by the shared evaluator."""

    metric: str
    torch: float
    onnx: float
    images: int
    torch_ms: float  # per image
    onnx_ms: float
    split: str = "val"

    @property
    def difference(self) -> float:
        return abs(self.onnx - self.torch)

    @property
    def ok(self) -> bool:
        return self.difference <= METRIC_TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "images": self.images, "metric": self.metric, "torch": self.torch, "onnx": self.onnx,
                "difference": self.difference, "tolerance": METRIC_TOLERANCE, "ok": self.ok}


@dataclass
class ExportResult:
    out: Path
    run_dir: Path
    backend: str
    task: str
    parity: Parity
    raw_parity: dict[str, Any] | None
    #: why this run (``--run`` named a compare folder: its winner), else None
    chosen: str | None = None
    card: dict[str, Any] = field(default_factory=dict)


# -- the run behind --run ----------------------------------------------------------------------


def _loaded(run_dir: Path, device: str, registry, onnx: Path | None = None):
    return load_backend(run_dir, device, registry, onnx=onnx)


# -- export -------------------------------------------------------------------------------------


def export_run(run: Path, *, fmt: str = "onnx", opset: int | None = None, dynamic: bool = False,
               out: Path | None = None, device: str = "cpu", data: Path | None = None, labels: Path | None = None,
               registry=None, reporter: Reporter | None = None) -> ExportResult:
    """``zoo export``: write the run's network and its card, then prove parity on val (a
    compare folder: its winner's; cross-validated: the ensemble of its fold models)."""
    if fmt not in FORMATS:
        raise ZooError(f"--format {fmt}: zoo exports {', '.join(FORMATS)}")
    if opset is not None and not 7 <= opset <= 20:
        raise ZooError(f"--opset {opset}: torch's exporter writes opsets 7 to 20")
    reporter = reporter or LogReporter()
    target = winner(run)
    if target.why:
        reporter.say(target.why)
    if target.is_ensemble:
        return export_ensemble(target.compare, target.backend, opset=opset, dynamic=dynamic, out=out, device=device,
                               registry=registry, reporter=reporter, chosen=target.why)
    return _export_one(target.run, opset=opset, dynamic=dynamic, out=out, device=device, data=data, labels=labels,
                       registry=registry, reporter=reporter, chosen=target.why)


def _export_one(run_dir: Path, *, opset: int | None, dynamic: bool, out: Path | None, device: str,
                data: Path | None, labels: Path | None, registry, reporter: Reporter,
                chosen: str | None = None) -> ExportResult:
    """One run's network, its card, and its parity on the run's val split."""
    out = Path(out) if out is not None else Path(run_dir) / "export" / "onnx"
    _check_out(out)
    torch_backend, task, meta, name = _loaded(run_dir, device, registry)
    truth = run_images(run_dir, data=data, labels=labels, registry=registry)
    val = strip_annotations(truth)  # the images alone, as the run predicted them
    reporter.say(f"predicting {len(val)} val image(s) with torch ...")
    torch_preds, torch_ms = _timed(torch_backend, val, reporter, "torch")
    reporter.say(f"exporting {name} to {out / MODEL_FILE} ...")
    try:
        graph = torch_backend.export_onnx(out, opset=opset, dynamic=dynamic, sample=val[:SAMPLE_IMAGES])
    except Unsupported as e:
        raise ZooError(f"{name} cannot be exported to ONNX: {e}") from None
    onnx_backend, *_ = _loaded(run_dir, device, registry, onnx=out / MODEL_FILE)
    onnx_preds, onnx_ms = _timed(onnx_backend, val, reporter, "onnxruntime")
    parity = _score_both(task, truth, torch_preds, onnx_preds, torch_ms, onnx_ms)
    RunFolder(out).save_predictions(task, onnx_preds, truth)
    card = _card(run_dir, name, task, meta, graph, parity, out, device)
    write_json(out / CARD_FILE, card)
    return ExportResult(out, Path(run_dir), name, task.name, parity, graph.get("raw_parity"), chosen, card)


def export_ensemble(compare_dir: Path, backend: str, *, opset: int | None = None, dynamic: bool = False,
                    out: Path | None = None, device: str = "cpu", registry=None, reporter: Reporter | None = None,
                    chosen: str | None = None) -> ExportResult:
    """The fold ensemble of ``backend`` in a compare folder: each fold model exported with its
    own parity on its val split (``member-<i>/``), and the ensemble's card: the fusion rule
    (it runs outside the graphs, as zoo.pipeline.ensemble states it) and the parity of the
    ONNX ensemble against the torch one on the compare's test split."""
    reporter = reporter or LogReporter()
    runs = member_runs(compare_dir, backend)
    out = Path(out) if out is not None else Path(compare_dir) / "export" / "onnx"
    _check_out(out)
    members = [_export_one(run, opset=opset, dynamic=dynamic, out=out / f"member-{i}", device=device, data=None,
                           labels=None, registry=registry, reporter=reporter) for i, run in enumerate(runs)]
    truth = test_images(runs)
    images = strip_annotations(truth)
    torch_members, task, meta, name = load_members(runs, device, registry)
    onnx_members, *_ = load_members(runs, device, registry, onnx=[m.out for m in members])
    reporter.say(f"predicting {len(images)} test image(s) with the ensemble of {len(runs)}, torch then onnxruntime ...")
    torch_preds, torch_ms = _timed(Ensemble(torch_members, task, meta), images, reporter, "torch ensemble")
    onnx_preds, onnx_ms = _timed(Ensemble(onnx_members, task, meta), images, reporter, "onnxruntime ensemble")
    parity = _score_both(task, truth, torch_preds, onnx_preds, torch_ms, onnx_ms, split="test")
    RunFolder(out).save_predictions(task, onnx_preds, truth, split="test")
    raw = max((m.raw_parity for m in members if m.raw_parity), key=lambda r: r["max_abs_diff"], default=None)
    card = {
        "format": "onnx", "zoo": members[0].card["zoo"], "backend": name, "task": task.name,
        "compare": str(Path(compare_dir).resolve()), **_vocabulary(task, meta),
        "ensemble": {"k": len(runs), "rule": rule_of(task.name), "runs": [str(Path(r).resolve()) for r in runs],
                     "members": [m.out.relative_to(out).as_posix() for m in members],
                     "what": "each member's model.json states its input, output and post-processing; every member "
                             "predicts the image and the rule fuses their outputs (outside the graphs)"},
        "parity": {**parity.to_dict(), "members": [m.parity.to_dict() for m in members], "raw": raw},
        "ms_per_image": {"torch": parity.torch_ms, "onnxruntime": parity.onnx_ms, "device": device,
                         "what": f"the ensemble of {len(runs)}: every member's decode, pre-processing, network and "
                                 "post-processing, and the fusion, on the compare's test images"},
        "scoring": {"predictions": RunFolder(out).prediction_path(task, "test").relative_to(out).as_posix(),
                    "ground_truth": "the compare's test split (each member run's data/test_coco.json)"},
    }
    write_json(out / CARD_FILE, card)
    return ExportResult(out, Path(compare_dir), name, task.name, parity, raw, chosen, card)


def _check_out(out: Path) -> None:
    """Never overwrite a folder zoo did not write: --out is new, empty, or an earlier export."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / CARD_FILE).is_file())):
        raise ZooError(f"--out {out}: exists and is not a zoo export; choose a new folder")


def _timed(backend, images: Sequence, reporter: Reporter, engine: str) -> tuple[list, float]:
    """The predictions of ``images`` and the milliseconds per image (one image predicted first,
    untimed: the first call pays for allocations neither engine pays again)."""
    list(backend.predict(images[:1]))
    t0 = time.perf_counter()
    preds = list(reporter.track(backend.predict(images), f"predicting ({engine})", total=len(images)))
    return preds, 1000 * (time.perf_counter() - t0) / max(1, len(images))


def _score_both(task, truth: Dataset, torch_preds: Sequence, onnx_preds: Sequence, torch_ms: float,
                onnx_ms: float, split: str = "val") -> Parity:
    a = evaluate(task, truth, torch_preds, ci95=False)
    b = evaluate(task, truth, onnx_preds, ci95=False)
    main = a["main"]
    return Parity(main, float(a[main]), float(b[main]), len(truth.images), round(torch_ms, 3), round(onnx_ms, 3),
                  split)


def _vocabulary(task, meta: Dataset) -> dict[str, Any]:
    """What the outputs are named by: image classes for classify, else categories (semantic-seg:
    background first), with the keypoints' names, skeleton and flip order for keypoint."""
    if task.name == "classify":
        return {"classes": meta.classes}
    names = {"categories": meta.categories}
    if task.name == "semantic-seg":
        names["label_map"] = "0 background, category i at i + 1"
    if task.name == "keypoint":
        names.update(keypoint_names=meta.keypoint_names, skeleton=[list(s) for s in meta.skeleton],
                     flip_idx=list(getattr(meta, "flip_idx", None) or []))
    return names


def _scoring(task, folder, out: Path, predictions: Path) -> dict[str, str]:
    """How ``zoo eval`` scores the ONNX predictions: against the run's val ground truth as
    COCO, except classify, whose image labels COCO does not hold (the run's data, val images)."""
    doc = {"predictions": predictions.relative_to(out).as_posix()}
    if task.name == "classify":
        return {**doc, "ground_truth": "the run's val images (split.json 'val') with their labels"}
    return {**doc, "ground_truth": str(folder.val_truth_file.resolve()),
            "command": f"zoo eval --task {task.name} --gt {folder.val_truth_file} --pred {predictions}"}


def _opset_of(model: Path) -> int:
    """The default-domain opset the graph was written with (what a runtime must support)."""
    import onnx

    proto = onnx.load(str(model), load_external_data=False)
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _card(run_dir: Path, name: str, task, meta: Dataset, graph: dict, parity: Parity, out: Path,
          device: str) -> dict[str, Any]:
    """model.json: everything a user of model.onnx needs without zoo."""
    folder = RunFolder(run_dir)
    predictions = RunFolder(out).prediction_path(task)
    graph = dict(graph)
    raw = graph.pop("raw_parity", None)
    graph["opset"] = _opset_of(out / MODEL_FILE)
    return {
        "format": "onnx", "zoo": __version__, "backend": name, "task": task.name, "run": str(Path(run_dir).resolve()),
        **_vocabulary(task, meta),
        **graph,
        "sha256": sha256_file(out / MODEL_FILE),
        "checkpoints": checkpoints_of(run_dir),
        "parity": {**parity.to_dict(), "raw": raw},
        "ms_per_image": {"torch": parity.torch_ms, "onnxruntime": parity.onnx_ms, "device": device,
                         "what": "decode, pre-processing, network and post-processing, on the run's val images"},
        "scoring": _scoring(task, folder, out, predictions),
    }
