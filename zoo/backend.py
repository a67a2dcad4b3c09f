"""The Backend interface: a thin translator between zoo's canonical data and one framework.

A backend receives the canonical :class:`~zoo.dataset.Dataset`, writes whatever its
framework needs into its own scratch folder, trains, and translates the framework's
predictions back into canonical ones (:mod:`zoo.predictions`). Splitting, scoring,
reporting and the run folder are zoo's, never the backend's.

Lifecycle, driven by :mod:`zoo.pipeline.run`::

    b = BackendClass(task, meta, config, ctx)   # cheap; imports the framework lazily
    b.fit(train, selection)                     # leaves a checkpoint in ctx.checkpoint_dir
    preds = list(b.predict(val.images))         # canonical predictions, one per image

``fit`` never receives the split that is scored: model selection (which epoch's weights
to keep, early stopping) is zoo's protocol, the same for every backend, played on a
selection split carved from the training images (:class:`zoo.selection.Selection`).
:func:`zoo.testing.check_backend` fails a backend that reads a scored image before
``predict``.

    b = BackendClass.load(task, meta, config, ctx)   # later: from ctx.checkpoint_dir
"""

from __future__ import annotations

import functools
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from zoo.checksums import Ledger
from zoo.config import BackendConfig
from zoo.dataset import Dataset, ImageRecord
from zoo.errors import ZooError
from zoo.predictions import Prediction
from zoo.selection import Selection
from zoo.tasks import Task

if TYPE_CHECKING:
    from zoo.specs import BackendSpec


@dataclass
class RunContext:
    """Where a backend may write, and on what device it runs.

    A backend writes nothing outside ``run_dir``: its checkpoint into ``checkpoint_dir``,
    converted data, framework logs and other scratch into ``work_dir``.
    """

    run_dir: Path
    device: str = "cpu"  # resolved: "cpu", "cuda", "cuda:1", ... never "auto"
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("zoo"))
    #: True when `zoo run --resume` continues an interrupted run whose fit did not finish:
    #: a backend that can continue training from its own ``work_dir`` state may do so.
    resume: bool = False
    #: True with ``--trust-weights``: a starting-weights file (``weights``, ``pretrained``)
    #: that is a pickle may be unpickled. Never applies to the run's own checkpoints.
    trust_weights: bool = False
    #: The sha256 of each checkpoint the run writes: a backend records a file it will read
    #: back (``ledger.record(path)``) and checks it before reading (``ledger.verify(path)``).
    #: Untracked (records and checks nothing) outside a run.
    ledger: Ledger = field(default_factory=Ledger)

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoint"

    @property
    def work_dir(self) -> Path:
        return self.run_dir / "work"


class Unsupported(ZooError):
    """A backend (or this configuration of it) lacks an optional capability (ONNX export,
    class probabilities); the message says why."""


class Backend(ABC):
    """Base class of every backend. Subclasses set ``Config`` and implement the four methods."""

    #: The pydantic settings model; extra keys are forbidden (typos are errors).
    Config: ClassVar[type[BackendConfig]] = BackendConfig
    #: ``imgsz: auto`` is rounded up to a multiple of this (the network's largest stride).
    stride: ClassVar[int] = 32
    #: False for a backend whose framework sizes its input itself (nnU-Net's planned patch):
    #: ``imgsz`` stays ``auto`` and the backend refuses one that was asked for.
    uses_imgsz: ClassVar[bool] = True
    #: ``epochs: auto`` gives at least this many optimiser steps from scratch ...
    auto_steps: ClassVar[int] = 300
    #: ... and never fewer epochs than this (see zoo.training.autoconfig).
    auto_min_epochs: ClassVar[int] = 30
    #: The spec this class was loaded through (:meth:`zoo.specs.BackendSpec.load` binds it,
    #: :meth:`for_spec`): its ``name`` and its ``options``. None on the unbound class.
    spec: ClassVar[BackendSpec | None] = None

    @classmethod
    def for_spec(cls, spec: BackendSpec) -> type[Backend]:
        """This class bound to ``spec``, so that one class can serve several backend names
        (one class per idea, each name's architecture or head in ``spec.options``): a subclass
        that differs only in its ``spec``, the same one for equal specs."""
        return _bound(cls, spec)

    @classmethod
    def option(cls, key: str) -> Any:
        """``spec.options[key]``: what this backend name sets in the class it shares."""
        if cls.spec is None or key not in cls.spec.options:
            raise ZooError(f"{cls.__qualname__} needs the option {key!r} of its backend spec: load it through "
                           "the registry (zoo.registry.get_registry().backend(NAME).load())")
        return cls.spec.options[key]

    def __init__(self, task: Task, meta: Dataset, config: BackendConfig, ctx: RunContext):
        self.task = task
        self.meta = meta.meta()  # vocabularies only; never the images
        self.config = config
        self.ctx = ctx

    @abstractmethod
    def fit(self, train: Dataset, selection: Selection) -> dict[str, Any]:
        """Train on ``train`` and keep the weights ``selection.protocol`` asks for.

        ``selection`` (:class:`zoo.selection.Selection`) holds the protocol, the selection
        images (``selection.images``; none when nothing is scored during training) and
        zoo's scorer. On zoo's shared loop, :func:`zoo.training.fit_backend` (or
        :func:`zoo.training.fit` with ``selection=selection,
        val_fn=selection.scorer(self.predict)``) does the rest; a framework
        with its own loop gets ``selection.images`` as its validation data, reports each
        scored epoch with ``selection.record`` and the kept one with ``selection.choose``.
        A backend without epochs may ignore it.

        Must leave everything :meth:`load` needs in ``ctx.checkpoint_dir``. Returns the
        framework's own final numbers, if any, for the log (never used for ranking).
        """

    @abstractmethod
    def predict(self, images: Sequence[ImageRecord]) -> Iterator[Prediction]:
        """One canonical prediction per image, in order, in original-image pixels."""

    @classmethod
    @abstractmethod
    def load(cls, task: Task, meta: Dataset, config: BackendConfig, ctx: RunContext) -> Backend:
        """A ready-to-predict backend restored from ``ctx.checkpoint_dir``."""

    # -- optional capabilities: ONNX export (zoo export, zoo predict --engine onnx) --------------

    def export_onnx(self, out_dir: Path, *, opset: int | None, dynamic: bool,
                    sample: Sequence[ImageRecord]) -> dict[str, Any]:
        """Write the trained network as ``out_dir/model.onnx`` (``opset``: None for the
        backend's choice; ``dynamic``: free height and width) and return what ``model.json``
        says about it: ``input`` (shape, colour order, the intensity rule and normalisation,
        how an image is fitted to the input), ``output``, ``postprocess`` (what runs outside
        the graph: NMS, mask pasting, resizing back, argmax) and ``raw_parity`` (onnxruntime
        against torch on ``sample``, a few of the run's val images, when it can compare).

        A backend whose framework cannot be exported raises :class:`Unsupported` with
        one line saying why (the default: no export written for this backend).
        """
        raise Unsupported("no ONNX export is written for this backend yet")

    @classmethod
    def load_onnx(cls, task: Task, meta: Dataset, config: BackendConfig, ctx: RunContext,
                  onnx_file: Path) -> Backend:
        """A backend whose ``predict`` runs ``onnx_file`` (what :meth:`export_onnx` wrote) in
        onnxruntime, with its pre- and post-processing unchanged: the same canonical
        predictions as :meth:`load`'s, within the raw parity of the graph."""
        raise Unsupported("no ONNX engine is written for this backend yet")

    # -- optional capability: class probabilities (fold ensembles, zoo.pipeline.ensemble) ---------

    def predict_probabilities(self, images: Sequence[ImageRecord]) -> Iterator[Any]:
        """Per image, in order, the class probabilities the prediction is the argmax of, as a
        float32 numpy array: semantic-seg ``(classes, H, W)`` at the image's own size
        (background first; the softmax of what ``predict`` argmaxes). Classify needs no such
        method: its :class:`~zoo.predictions.ClassPrediction` carries ``scores``.
        Raises :class:`Unsupported` where the model gives none (the default)."""
        raise Unsupported("this backend gives no class probabilities")

    def versions(self) -> dict[str, str]:
        """Framework versions for the run manifest, e.g. ``{"ultralytics": "8.3.0"}``."""
        return {}

    def num_parameters(self) -> int | None:
        """Trainable parameter count of the model, for leaderboards (None if unknown)."""
        return None


@functools.cache
def _bound(cls: type[Backend], spec: BackendSpec) -> type[Backend]:
    # named and documented as the class itself: it is that class, with its spec
    return type(cls.__name__, (cls,), {"spec": spec, "__module__": cls.__module__, "__qualname__": cls.__qualname__,
                                       "__doc__": cls.__doc__})
