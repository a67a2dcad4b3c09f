"""A conformance suite any backend can run, after scikit-learn's ``check_estimator``.

The rules zoo relies on are small named checks (``check_*`` below, listed in :data:`CHECKS`).
A third-party backend shows each one by name in its own pytest run, as scikit-learn's
``parametrize_with_checks`` does::

    from zoo.testing import parametrize_with_checks

    @parametrize_with_checks([("my-net", "detect")])
    def test_my_backend(conformance, check):
        check(conformance)

which pytest reports as ``test_my_backend[my-net-detect-check_registers]``,
``...-check_fit_reads_no_scored_image]`` and so on. Or all of them in one call::

    from zoo.testing import check_backend

    def test_my_backend_conforms(tmp_path):
        check_backend("my-net", "detect", tmp_path)

A :class:`Conformance` is one backend on one task. It trains the backend once, for one epoch
on a tiny demo dataset (learning is not expected; the contract is), the first time a check
needs it, and every check reads that one training: the spec and config are sound, training
leaves a checkpoint that loads without unpickling code (every ``.pt`` / ``.pth`` reads with
``torch.load(weights_only=True)``) and writes nothing outside the run folder, ``predict``
returns one well-formed canonical prediction per image in order, a backend restored with
``load`` predicts the same, and the shared evaluator accepts the predictions.

It also checks that the backend never reads the scored split before prediction. ``fit``
gets the training images and a selection split (protocol ``best``), never the scored
images; while it runs, every file the process opens, links or copies through Python
(``sys.addaudithook``: ``open``, ``os.link``, ``os.symlink``, ``shutil.copyfile``...) is
traced, and opening a scored image's file fails the check, whether for training or for
selection. (Reads that bypass Python's file layer, such as OpenCV's ``imread``, are beyond
the trace.)
A failed check raises ``AssertionError`` saying which rule was broken.

Readers have their own kit, :func:`check_reader` (:mod:`zoo.data.reader_kit`): a reader and
a sample folder of its format, checked for detection, declining other formats, determinism,
round trip through zoo's writer and the bad-input rules.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import weakref
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from zoo.backend import Backend, RunContext
from zoo.checksums import Ledger
from zoo.config import BackendConfig, resolve_config
from zoo.data.reader_kit import READER_CHECKS, check_reader  # noqa: F401 -- the readers' kit, exported here
from zoo.dataset import Dataset
from zoo.errors import ZooError
from zoo.predictions import ClassPrediction, SemanticPrediction, check_predictions, score_predictions
from zoo.registry import Registry, get_registry
from zoo.selection import Protocol, Selection
from zoo.tasks import get_task
from zoo.data.demo import write_demo
from zoo.data.reading import read_dataset


@dataclass
class CheckReport:
    """What :func:`check_backend` saw, for tests that want to assert more."""

    backend: str
    task: str
    run_dir: Path
    predictions: list = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """What one step of a :class:`Conformance` left: the backend's predictions on the
    scored split, the files that appeared in the current directory meanwhile and (training
    only) the scored images ``fit`` opened."""

    predictions: list
    new_in_cwd: set[str]
    reads: set[str] = field(default_factory=set)


class Conformance:
    """One backend on one task, as the checks see it: the spec, the tiny data and its
    split, and (built once, the first time a check asks) the trained backend, its
    predictions, a restored copy's predictions and the evaluator's metrics.

    ``dataset``: the data to train on (a :class:`~zoo.dataset.Dataset`, or a function of a
    folder that returns one, called when first needed); default: 8 demo images. ``tmp_dir``:
    where the run folder goes; default: a temporary folder removed when the object is.
    A step that failed fails every check that needs it, with the same error.
    """

    def __init__(self, backend: str, task: str, tmp_dir: str | Path | None = None, *,
                 dataset: Dataset | Callable[[Path], Dataset] | None = None, sets: Iterable[str] = (),
                 registry: Registry | None = None, imgsz: int = 64):
        self.backend, self.task_name = backend, task
        self.sets, self.imgsz = list(sets), imgsz
        self._registry, self._dataset = registry, dataset
        self._tmp_dir = Path(tmp_dir) if tmp_dir is not None else None
        self._built: dict[str, Any] = {}
        self._failed: dict[str, BaseException] = {}

    def __repr__(self) -> str:
        return f"{self.backend}-{self.task_name}"

    # what the checks read, each built once ------------------------------------------------------

    @property
    def tmp_dir(self) -> Path:
        """The folder the data and the run folder go in (made on first use when not given)."""
        if self._tmp_dir is None:
            self._tmp_dir = Path(tempfile.mkdtemp(prefix=f"zoo-check-{self.backend}-"))
            weakref.finalize(self, shutil.rmtree, self._tmp_dir, True)
        return self._tmp_dir

    @property
    def run_dir(self) -> Path:
        return self.tmp_dir / "run"

    @cached_property
    def task(self):
        return get_task(self.task_name)

    @cached_property
    def spec(self):
        return (self._registry or get_registry()).backend(self.backend)

    @cached_property
    def cls(self) -> type:
        return self.spec.load()

    @cached_property
    def data(self) -> Dataset:
        data = self._dataset
        if callable(data):
            data = data(self.tmp_dir / "data")
        return data if data is not None else _tiny_demo(self.tmp_dir / "data")

    @cached_property
    def split(self) -> tuple[Dataset, Selection, Dataset]:
        """(train, selection, scored): the usable images, the last quarter scored, a quarter
        of the rest for model selection (protocol ``best``)."""
        data, task = self.data, self.task
        task.check(data)
        usable = [r for r in data.images if task.is_annotated(r)]
        assert len(usable) >= 4, f"the check needs at least 4 usable images, got {len(usable)}"
        n_val = max(2, len(usable) // 4)
        n_selection = max(1, (len(usable) - n_val) // 4)
        train = data.subset([r.id for r in usable[: -n_val - n_selection]])
        chosen = data.subset([r.id for r in usable[-n_val - n_selection: -n_val]])
        return train, Selection(Protocol(rule="best"), chosen, task), data.subset([r.id for r in usable[-n_val:]])

    @property
    def val(self) -> Dataset:
        return self.split[2]

    @cached_property
    def config(self) -> BackendConfig:
        return resolve_config(
            self.cls.Config, backend=self.backend, task=self.task_name, sets=self.sets,
            flags={"epochs": 1, "imgsz": self.imgsz, "batch": 2, "device": "cpu", "workers": 0},
        )

    @cached_property
    def ctx(self) -> RunContext:
        # a ledger as `zoo run` keeps one: what the backend records, it must find unchanged on load
        ctx = RunContext(run_dir=self.run_dir, device="cpu", ledger=Ledger(self.run_dir, {}))
        for d in (ctx.checkpoint_dir, ctx.work_dir):
            d.mkdir(parents=True, exist_ok=True)
        return ctx

    def fit(self) -> Outcome:
        """Train once (reads of the scored images traced), predict the scored split."""
        return self._once("fit", self._fit)

    def predict_restored(self) -> Outcome:
        """A backend built by ``load`` from the checkpoint, predicting the scored split."""
        return self._once("restored", self._predict_restored)

    def metrics(self) -> dict[str, Any]:
        """The shared evaluator's metrics for the trained backend's predictions."""
        return self._once("metrics", lambda: score_predictions(self.task, self.val, self.fit().predictions)[0])

    def report(self) -> CheckReport:
        return CheckReport(backend=self.backend, task=self.task_name, run_dir=self.run_dir,
                           predictions=self.fit().predictions, metrics=self.metrics())

    def _once(self, step: str, build: Callable[[], Any]) -> Any:
        """``build()``'s result, built on the first call; a failure is raised again after."""
        if step in self._failed:
            raise self._failed[step]
        if step not in self._built:
            try:
                self._built[step] = build()
            except Exception as e:
                self._failed[step] = e
                raise
        return self._built[step]

    def _fit(self) -> Outcome:
        train, selection, val = self.split
        # the data and the run folder first: they may lie under the current directory
        meta, config, ctx = self.data.meta(), self.config, self.ctx
        with _new_in_cwd() as new:
            model = self.cls(self.task, meta, config, ctx)
            with traced_reads(image_files(val)) as reads:
                model.fit(train, selection)
            predictions = list(model.predict(val.images))
        return Outcome(predictions, new, set(reads))

    def _predict_restored(self) -> Outcome:
        with _new_in_cwd() as new:
            restored = self.cls.load(self.task, self.data.meta(), self.config, self.ctx)
            predictions = list(restored.predict(self.val.images))
        return Outcome(predictions, new)


# the checks: each one rule, named for it ----------------------------------------------------------


def check_registers(c: Conformance) -> None:
    """The entry point names a :class:`~zoo.backend.Backend` that lists the task and says
    what it is (for ``zoo list``)."""
    spec = c.spec
    assert c.task_name in spec.tasks, f"{c.backend}: spec does not list task {c.task_name!r} (lists {spec.tasks})"
    assert spec.description, f"{c.backend}: spec has no description for `zoo list`"
    assert isinstance(c.cls, type) and issubclass(c.cls, Backend), (
        f"{c.backend}: {spec.entry} is not a zoo.backend.Backend subclass"
    )


def check_config_forbids_unknown_keys(c: Conformance) -> None:
    """``Config`` subclasses :class:`~zoo.config.BackendConfig` and refuses a misspelt key."""
    from pydantic import ValidationError

    assert issubclass(c.cls.Config, BackendConfig), f"{c.backend}: Config must subclass BackendConfig"
    try:
        c.cls.Config(definitely_not_a_key=1)
    except ValidationError:
        return
    raise AssertionError(f"{c.backend}: Config accepts unknown keys; set extra='forbid'")


def check_fit_reads_no_scored_image(c: Conformance) -> None:
    """``fit`` opens none of the scored split's images (training and selection use only
    what zoo gives ``fit``)."""
    reads = c.fit().reads
    assert not reads, (
        f"{c.backend}: fit() read {len(reads)} image(s) of the scored split before prediction "
        f"(e.g. {sorted(reads)[0]}): training and model selection may use only the training images "
        "and the selection split zoo gives fit()"
    )


def check_fit_leaves_checkpoint(c: Conformance) -> None:
    """Training leaves something in the run's checkpoint folder."""
    c.fit()
    assert any(c.ctx.checkpoint_dir.iterdir()), f"{c.backend}: fit() left nothing in {c.ctx.checkpoint_dir}"


def check_checkpoint_tensors_only(c: Conformance) -> None:
    """Every torch file in the checkpoint loads with ``weights_only``: reading a run folder
    back never unpickles code (a pickle there could be swapped for one that runs a command)."""
    c.fit()
    for path in sorted(p for p in c.ctx.checkpoint_dir.rglob("*") if p.suffix in (".pt", ".pth")):
        import torch

        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any refusal breaks the rule
            raise AssertionError(f"{c.backend}: {path} does not load with torch.load(weights_only=True) "
                                 f"({type(e).__name__}); save a state dict of tensors and plain values") from None


def check_fit_predict_shapes(c: Conformance) -> None:
    """``predict`` returns one well-formed prediction per image, in order, in the image's
    pixels (label maps of its size, boxes inside it)."""
    _well_formed(c, c.fit().predictions)


def check_checkpoint_round_trip(c: Conformance) -> None:
    """A backend restored by ``load`` predicts what the trained one did (up to float noise)."""
    again = c.predict_restored().predictions
    _well_formed(c, again)
    for a, b in zip(c.fit().predictions, again):
        _same(c.backend, a, b)


def check_writes_nothing_in_cwd(c: Conformance) -> None:
    """Training and prediction write nothing into the current directory (only the run folder)."""
    new = c.fit().new_in_cwd | c.predict_restored().new_in_cwd
    assert not new, f"{c.backend}: wrote into the current directory: {sorted(new)}"


def check_evaluator_accepts_predictions(c: Conformance) -> None:
    """zoo's shared evaluator scores the predictions (the metrics carry their conventions)."""
    assert "conventions" in c.metrics(), "evaluator returned no conventions block"


#: every check, in the order :func:`check_backend` runs them
CHECKS: tuple[Callable[[Conformance], None], ...] = (
    check_registers,
    check_config_forbids_unknown_keys,
    check_fit_reads_no_scored_image,
    check_fit_leaves_checkpoint,
    check_checkpoint_tensors_only,
    check_fit_predict_shapes,
    check_checkpoint_round_trip,
    check_writes_nothing_in_cwd,
    check_evaluator_accepts_predictions,
)


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
    """Run every check (:data:`CHECKS`) for ``backend`` on ``task``; see the module docstring."""
    c = Conformance(backend, task, tmp_dir, dataset=dataset, sets=sets, registry=registry, imgsz=imgsz)
    for check in CHECKS:
        check(c)
    return c.report()


def parametrize_with_checks(cases: Iterable[Conformance | tuple[str, str]]):
    """A ``pytest.mark.parametrize`` over ``(conformance, check)`` for each case and each
    check of :data:`CHECKS`, so pytest shows every check by name
    (``test_x[my-net-detect-check_fit_predict_shapes]``). A case is a :class:`Conformance`
    or ``(backend, task)``; each case trains once, for all its checks."""
    import pytest

    cases = [c if isinstance(c, Conformance) else Conformance(*c) for c in cases]
    params = [pytest.param(case, check, id=f"{case!r}-{check.__name__}") for case in cases for check in CHECKS]
    return pytest.mark.parametrize("conformance, check", params)


# helpers ----------------------------------------------------------------------------------------


def _well_formed(c: Conformance, preds: list) -> None:
    """zoo's one prediction check (:func:`zoo.predictions.check_predictions`), with boxes
    inside their images, as a failed check."""
    try:
        check_predictions(c.task, c.backend, c.val.images, preds, c.data.meta(), inside_image=True)
    except ZooError as e:
        raise AssertionError(str(e)) from None


def _same(backend: str, a, b) -> None:
    """Two predictions of one image agree (up to float noise)."""
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


@contextmanager
def _new_in_cwd():
    """Yields the set of names that appear in the current directory while inside."""
    cwd = Path.cwd()
    before = set(os.listdir(cwd))
    new: set[str] = set()
    try:
        yield new
    finally:
        new.update(set(os.listdir(cwd)) - before)


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
    if not out.exists():
        write_demo(out, images=8, size=64, seed=0)
    return read_dataset(out)
