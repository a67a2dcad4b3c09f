"""A conformance suite any backend can run, after scikit-learn's ``check_estimator``.

A third-party backend proves it honours zoo's contract with one call in its own tests::

    from zoo.testing import check_backend

    def test_my_backend_conforms(tmp_path):
        check_backend("my-net", "detect", tmp_path)

It trains the backend for one epoch on a tiny demo dataset (learning is not expected; the
contract is), then checks what zoo relies on: the spec and config are sound, training
leaves a checkpoint that loads without unpickling code (every ``.pt`` / ``.pth`` reads with
``torch.load(weights_only=True)``) and writes nothing outside the run folder, ``predict`` returns one
well-formed canonical prediction per image in order, a backend restored with ``load``
predicts the same, and the shared evaluator accepts the predictions.

It also checks that the backend never reads the scored split before prediction. ``fit``
gets the training images and a selection split (protocol ``best``), never the scored
images; while it runs, every file the process opens, links or copies through Python
(``sys.addaudithook``: ``open``, ``os.link``, ``os.symlink``, ``shutil.copyfile``...) is
traced, and opening a scored image's file fails the check, whether for training or for
selection. (Reads that bypass Python's file layer, such as OpenCV's ``imread``, are beyond
the trace.)
A failed check raises ``AssertionError`` saying which rule was broken.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.backend import Backend, RunContext
from zoo.checksums import Ledger
from zoo.config import BackendConfig, resolve_config
from zoo.dataset import Dataset
from zoo.errors import ZooError
from zoo.predictions import ClassPrediction, SemanticPrediction, check_predictions, score_predictions
from zoo.registry import Registry, get_registry
from zoo.selection import Protocol, Selection
from zoo.tasks import get_task


@dataclass
class CheckReport:
    """What :func:`check_backend` saw, for tests that want to assert more."""

    backend: str
    task: str
    run_dir: Path
    predictions: list = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def check_backend(
    backend: str,
    task: str,
    tmp_dir: str | Path,
    *,
    dataset: Dataset | None = None,
    sets: list[str] | tuple[str, ...] = (),
    registry: Registry | None = None,
    imgsz: int = 64,
) -> CheckReport:
    """Run the conformance checks for ``backend`` on ``task``; see the module docstring."""
    tmp_dir = Path(tmp_dir)
    registry = registry or get_registry()
    task_obj = get_task(task)

    spec = registry.backend(backend)
    assert task in spec.tasks, f"{backend}: spec does not list task {task!r} (lists {spec.tasks})"
    assert spec.description, f"{backend}: spec has no description for `zoo list`"
    cls = spec.load()
    assert isinstance(cls, type) and issubclass(cls, Backend), (
        f"{backend}: {spec.entry} is not a zoo.backend.Backend subclass"
    )
    assert issubclass(cls.Config, BackendConfig), f"{backend}: Config must subclass BackendConfig"
    _check_config_forbids_unknown_keys(backend, cls.Config)

    data = dataset if dataset is not None else _tiny_demo(tmp_dir / "data")
    task_obj.check(data)
    usable = [r for r in data.images if task_obj.is_annotated(r)]
    assert len(usable) >= 4, f"the check needs at least 4 usable images, got {len(usable)}"
    n_val = max(2, len(usable) // 4)
    n_selection = max(1, (len(usable) - n_val) // 4)
    train = data.subset([r.id for r in usable[: -n_val - n_selection]])
    selection = Selection(Protocol(rule="best"), data.subset([r.id for r in usable[-n_val - n_selection : -n_val]]),
                          task_obj)
    val = data.subset([r.id for r in usable[-n_val:]])

    config = resolve_config(
        cls.Config, backend=backend, task=task, sets=list(sets),
        flags={"epochs": 1, "imgsz": imgsz, "batch": 2, "device": "cpu", "workers": 0},
    )
    run_dir = tmp_dir / "run"
    # a ledger as `zoo run` keeps one: what the backend records, it must find unchanged on load
    ctx = RunContext(run_dir=run_dir, device="cpu", ledger=Ledger(run_dir, {}))
    for d in (ctx.checkpoint_dir, ctx.work_dir):
        d.mkdir(parents=True, exist_ok=True)

    cwd_before = set(os.listdir(Path.cwd()))
    model = cls(task_obj, data.meta(), config, ctx)
    with traced_reads(image_files(val)) as reads:
        model.fit(train, selection)
    assert not reads, (
        f"{backend}: fit() read {len(reads)} image(s) of the scored split before prediction "
        f"(e.g. {sorted(reads)[0]}): training and model selection may use only the training images "
        "and the selection split zoo gives fit()"
    )
    assert any(ctx.checkpoint_dir.iterdir()), f"{backend}: fit() left nothing in {ctx.checkpoint_dir}"
    _check_tensors_only(backend, ctx.checkpoint_dir)

    preds = list(model.predict(val.images))
    _check_predictions(backend, task_obj, data, val, preds)

    restored = cls.load(task_obj, data.meta(), config, ctx)
    again = list(restored.predict(val.images))
    _check_predictions(backend, task_obj, data, val, again)
    for a, b in zip(preds, again):
        _check_same(backend, a, b)

    new_in_cwd = set(os.listdir(Path.cwd())) - cwd_before
    assert not new_in_cwd, f"{backend}: wrote into the current directory: {sorted(new_in_cwd)}"

    metrics, _ = score_predictions(task_obj, val, preds)
    assert "conventions" in metrics, "evaluator returned no conventions block"
    return CheckReport(backend=backend, task=task, run_dir=run_dir, predictions=preds, metrics=metrics)


def image_files(data: Dataset) -> set[str]:
    """The files that hold ``data``'s pixels (image files, or labelme JSONs with imageData)."""
    files = {f for r in data.images for f in (r.file, r.embedded) if f is not None}
    return {os.path.realpath(f) for f in files} | {os.path.abspath(f) for f in files}


_AUDITED = ("open", "os.link", "os.symlink", "shutil.copyfile", "shutil.copymode", "shutil.copystat", "os.rename")
_watches: list[tuple[set[str], set[str]]] = []  # (files watched, files seen) of each active trace
_hooked = False


def _audit(event: str, args: tuple) -> None:
    # Called on every audited event in the process: return at once unless a trace is on.
    if not _watches or event not in _AUDITED or not args:
        return
    path = args[0]
    if isinstance(path, int) or path is None:
        return
    try:
        name = os.path.abspath(os.fsdecode(path))
    except (TypeError, ValueError):
        return
    for watched, seen in _watches:
        if name in watched:
            seen.add(name)


@contextmanager
def traced_reads(files: set[str]):
    """Yields the set of ``files`` opened (or linked, copied) through Python while inside."""
    global _hooked
    if not _hooked:
        sys.addaudithook(_audit)  # permanent by design of audit hooks; idle outside a trace
        _hooked = True
    seen: set[str] = set()
    entry = (set(files), seen)
    _watches.append(entry)
    try:
        yield seen
    finally:
        _watches.remove(entry)


def _tiny_demo(out: Path) -> Dataset:
    from zoo.data.demo import write_demo
    from zoo.data.reading import read_dataset

    if not out.exists():
        write_demo(out, images=8, size=64, seed=0)
    return read_dataset(out)


def _check_config_forbids_unknown_keys(backend: str, config_cls: type[BackendConfig]) -> None:
    from pydantic import ValidationError

    try:
        config_cls(definitely_not_a_key=1)
    except ValidationError:
        return
    raise AssertionError(f"{backend}: Config accepts unknown keys; set extra='forbid'")


def _check_predictions(backend, task, data, val, preds) -> None:
    """zoo's one prediction check (:func:`zoo.predictions.check_predictions`), with boxes
    inside their images, as a failed check."""
    try:
        check_predictions(task, backend, val.images, preds, data.meta(), inside_image=True)
    except ZooError as e:
        raise AssertionError(str(e)) from None


def _check_same(backend: str, a, b) -> None:
    """A restored backend predicts what the trained one did (up to float noise)."""
    msg = f"{backend}: load() gives different predictions for {a.image_id}"
    if isinstance(a, ClassPrediction):
        assert a.label == b.label, msg
    elif isinstance(a, SemanticPrediction):
        agree = float((a.label_map == b.label_map).mean()) if a.label_map.size else 1.0
        assert agree > 0.99, f"{msg} ({agree:.1%} of pixels agree)"
    else:
        assert len(a.detections) == len(b.detections), f"{msg} ({len(a.detections)} vs {len(b.detections)})"
        for da, db in zip(a.detections, b.detections):
            assert da.category == db.category, msg
            assert abs(da.score - db.score) < 1e-3, msg
            assert max(abs(p - q) for p, q in zip(da.bbox, db.bbox)) < 0.5, msg


def _check_tensors_only(backend: str, checkpoint_dir: Path) -> None:
    """Every torch file in the checkpoint loads with ``weights_only``: reading a run folder
    back never unpickles code (a pickle there could be swapped for one that runs a command)."""
    for path in sorted(p for p in checkpoint_dir.rglob("*") if p.suffix in (".pt", ".pth")):
        import torch

        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any refusal breaks the rule
            raise AssertionError(f"{backend}: {path} does not load with torch.load(weights_only=True) "
                                 f"({type(e).__name__}); save a state dict of tensors and plain values") from None
