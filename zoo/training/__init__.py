"""The one training loop for plain ``torch.nn.Module`` backends.

Every plugin that trains a plain module (torchvision R-CNNs and classifiers, smp, ...) calls
:func:`fit` instead of writing its own loop, so epochs, batching, device, AMP, seeding, the
optimiser and its schedule, gradient clipping, checkpoints, resuming and the progress bar
behave the same for every backend. torch is imported inside functions only.

How a plugin uses it::

    from zoo.training import TrainConfig, MappedDataset, fit, criterion_loss, collate_lists

    class Config(TrainConfig):          # the backend's settings: epochs, batch, lr, ...
        backbone: str = "resnet18"

    # classification: model(x) -> logits, scored by a criterion
    data = MappedDataset(train.images, load_sample)        # load_sample(record) -> (x, y)
    result = fit(model, data, config=self.config, device=self.ctx.device,
                 checkpoint_dir=self.ctx.checkpoint_dir,
                 loss_fn=criterion_loss(torch.nn.CrossEntropyLoss()),
                 extra={"classes": meta.classes}, ledger=self.ctx.ledger)

    # detection: model(images, targets) -> dict of losses (torchvision's convention,
    # the default loss_fn), batches kept as lists because images differ in size
    result = fit(model, data, config=self.config, device=self.ctx.device,
                 checkpoint_dir=self.ctx.checkpoint_dir, collate=collate_lists)

    # model selection is zoo's protocol (zoo.selection): pass what fit() got
    result = fit(model, data, ..., selection=selection, val_fn=selection.scorer(self.predict))

    # later, in load(): the weights the protocol kept (best.pt, else last.pt), checked against
    # the sha256 the run recorded when it wrote them
    restore(model, ctx.checkpoint_dir, {"classes": meta.classes}, ledger=ctx.ledger)

Model selection: with a :class:`~zoo.selection.Selection`, the protocol decides (and ``fit``
returns with the model holding the weights it kept, as ``restore`` gives them later). ``last``
scores nothing (``val_fn`` is never called) and keeps the final weights; ``best`` scores
the selection split with ``val_fn`` every ``val_every`` epochs and after the last one, and
keeps the best; ``patience`` stops training that many epochs after the best score. Without
a selection, a given ``val_fn`` picks the best epoch (direct use, tests).

Checkpoints: ``last.pt`` after every epoch and, when the best epoch is kept, ``best.pt``
whenever the epoch's score equals or beats the best so far (higher is better); ``best.pt``
is a hard link to that epoch's ``last.pt`` (a copy where links fail), so
marking the best costs no second write. Both hold ``model``, ``optimizer``, ``scheduler``, ``scaler``, ``epoch`` (0-based,
completed), ``best_score``, ``history`` and the caller's ``extra`` (plain values only: the
files are read back with ``torch.load(weights_only=True)``, which unpickles no code). With ``resume=True`` (the
default) a ``last.pt`` already in ``checkpoint_dir`` is continued from the next epoch, with
the data order each epoch would have had (the shuffle is seeded per epoch).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from zoo.checksums import Ledger
from zoo.config import BackendConfig
from zoo.errors import ZooError
from zoo.progress import track
from zoo.training.seeding import seed_everything

LAST = "last.pt"
BEST = "best.pt"

_log = logging.getLogger("zoo.training")


class TrainConfig(BackendConfig):
    """The settings :func:`fit` reads, the one training config: a backend's ``Config``
    subclasses it, and tests build it directly (``TrainConfig(epochs=3, batch=8)``).

    ``lr`` is the peak rate after warm-up; ``schedule`` then lowers it per iteration:
    ``cosine`` to ``lr * final_lr`` at the end, ``step`` by 10x at 2/3 and 8/9 of the epochs
    (torchvision's reference recipe), ``constant`` not at all.
    """

    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    final_lr: float = 0.01
    warmup_iters: int = 100
    grad_clip: float = 10.0  # max L2 norm of all gradients; 0 = no clipping
    amp: bool = True  # mixed precision, used on CUDA only (never on CPU)
    val_every: int = 1  # score the selection split (val_fn) every this many epochs and after the last one

    @classmethod
    def of(cls, config: Any) -> TrainConfig:
        """``config`` as a :class:`TrainConfig`: itself when it is one, else its same-named
        settings (a backend ``Config`` that does not subclass this one), the rest at their
        defaults. ``epochs`` must be a number by the time :func:`fit` reads it."""
        if not isinstance(config, cls):
            config = cls(**{name: getattr(config, name) for name in cls.model_fields if hasattr(config, name)})
        if not isinstance(config.epochs, int):
            raise ZooError(f"epochs {config.epochs!r}: training needs a number of epochs "
                           "(`auto` is chosen from the data by zoo.training.autoconfig before fit)")
        return config


@dataclass
class TrainResult:
    """What :func:`fit` did: one ``history`` row per epoch run in this call (and before,
    when resumed), the best epoch and where the checkpoints are."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    iterations: int = 0
    seconds: float = 0.0
    last_path: Path | None = None
    best_path: Path | None = None
    resumed_from: int | None = None  # the completed epoch a resume continued after

    @property
    def final_loss(self) -> float:
        return self.history[-1]["loss"] if self.history else math.nan

    @property
    def reported_history(self) -> list[dict[str, float]]:
        """``history`` with 1-based epochs, as a backend's ``fit`` returns it (``"history"``,
        logged per epoch by ``--track``, zoo.pipeline.tracking)."""
        return [{**row, "epoch": row["epoch"] + 1} for row in self.history]


class MappedDataset:
    """A map-style dataset for ``torch.utils.data.DataLoader``: ``fn(items[i])``.

    ``fn`` turns one item (usually an :class:`~zoo.dataset.ImageRecord`) into one training
    sample, e.g. ``(image_tensor, target)``; it runs in the loader workers when
    ``workers > 0``, so it must be picklable then (a module-level function or a
    :func:`functools.partial`, not a lambda).
    """

    def __init__(self, items: Sequence[Any], fn: Callable[[Any], Any]):
        self.items = list(items)
        self.fn = fn

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.fn(self.items[index])


def collate_lists(batch: list[Any]) -> tuple:
    """Samples ``(a, b, ...)`` -> ``([a...], [b...], ...)``: for images of different sizes
    (torchvision detection models take a list of images and a list of target dicts)."""
    return tuple(list(part) for part in zip(*batch))


def criterion_loss(criterion: Callable) -> Callable:
    """A ``loss_fn`` for a model that returns logits: ``criterion(model(x), y)``."""

    def loss_fn(model, batch):
        inputs, targets = batch[0], batch[1]
        return criterion(model(inputs), targets)

    return loss_fn


def loss_dict_fn(model, batch):
    """The default ``loss_fn``: ``model(inputs, targets)`` returning a dict of losses (or one
    loss tensor), torchvision detection's training convention."""
    inputs, targets = batch[0], batch[1]
    return model(inputs, targets)


def to_device(obj: Any, device: Any) -> Any:
    """Tensors anywhere in nested lists / tuples / dicts moved to ``device``."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def make_optimizer(model, s: TrainConfig):
    """SGD (momentum, Nesterov off) or AdamW; no weight decay on biases and norm layers,
    whose 1-d parameters only shrink toward zero under it."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ZooError("the model has no trainable parameters")
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if s.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=s.lr, momentum=s.momentum)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=s.lr)
    raise ZooError(f"optimizer {s.optimizer!r}: expected sgd or adamw")


def lr_factor(it: int, total: int, s: TrainConfig) -> float:
    """The learning-rate multiplier at iteration ``it`` of ``total``: linear warm-up from
    0.001 over ``warmup_iters`` (capped at a fifth of training, so short runs still reach
    the peak), then the schedule."""
    warm = min(s.warmup_iters, max(total // 5, 0))
    w = 1.0
    if warm > 0 and it < warm:
        w = 0.001 + (1 - 0.001) * it / warm
    progress = min(it / max(total, 1), 1.0)
    if s.schedule == "cosine":
        f = s.final_lr + (1 - s.final_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    elif s.schedule == "step":
        f = 0.1 ** sum(progress >= m for m in (2 / 3, 8 / 9))
    elif s.schedule == "constant":
        f = 1.0
    else:
        raise ZooError(f"schedule {s.schedule!r}: expected cosine, step or constant")
    return w * f


def save_checkpoint(state: dict[str, Any], path: Path, *, copies: Sequence[Path] = (),
                    ledger: Ledger | None = None) -> Path:
    """Write atomically (a temporary file beside it, then a rename): an interrupted or failed
    save (a full disk) never leaves a truncated ``last.pt`` nor a temporary file behind.

    ``copies`` get the same content (hard links, see :func:`copy_checkpoint`). With ``ledger``
    (the run's checksums) the new sha256 is recorded before the files are replaced, the old
    one dropped after: killed at any moment, the run holds checkpoints its ledger accepts.
    """
    import hashlib
    import io

    import torch

    from zoo.atomic import write_bytes

    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    if ledger is not None:
        ledger.expect(digest, path, *copies)
    write_bytes(path, data)
    for copy in copies:
        copy_checkpoint(path, copy)
    if ledger is not None:
        ledger.settle(dict.fromkeys([path, *copies], digest))
    return path


def copy_checkpoint(src: Path, dst: Path) -> Path:
    """``dst`` with ``src``'s content: a hard link where the file system allows (no second
    write of a large file; a later atomic replace of ``src`` leaves ``dst`` untouched)."""
    tmp = dst.with_suffix(dst.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            import shutil

            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave best.pt.tmp behind
        raise
    return dst


def load_checkpoint(path: str | Path, map_location: Any = "cpu", *, trust: bool = False) -> dict[str, Any]:
    """A checkpoint written by :func:`fit` (or any plain state dict), as a dict.

    Only tensors and plain values are read (``weights_only``): unpickling a file can run any
    code in it. ``trust=True`` (``--trust-weights``, for a user's own starting weights) lifts
    that for a file that needs it.
    """
    import pickle
    import warnings

    import torch

    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path}: no checkpoint there (train first, or point --weights at a .pt file)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's pickle-protocol warnings: the error below says it all
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            if not trust:
                raise ZooError(f"{path}: not a readable checkpoint: {_refused(e)}; zoo reads only tensors, since "
                               "unpickling can run any code (a starting-weights file you trust loads with "
                               "--trust-weights)") from None
        except Exception as e:  # corrupt file, not a torch file
            raise ZooError(f"{path}: not a readable checkpoint ({_first_line(e)})") from None
        try:
            return torch.load(path, map_location=map_location, weights_only=False)
        except Exception as e:
            raise ZooError(f"{path}: not a readable checkpoint ({_first_line(e)})") from None


def weights_of(path: str | Path, trust: bool = False) -> dict[str, Any]:
    """The state dict in a starting-weights file: a zoo checkpoint (its ``model``), a plain
    state dict, or (``trust`` only: a pickle) a whole saved module."""
    state = load_checkpoint(path, trust=trust)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if callable(getattr(state, "state_dict", None)):
        state = state.state_dict()
    if not isinstance(state, dict) or not state:
        raise ZooError(f"{path}: holds no model weights (expected a state dict)")
    return state


def _refused(err: Exception) -> str:
    """What torch's weights-only reader refused, in a few words (its message is a page long)."""
    import re

    m = re.search(r"GLOBAL ([\w.]+)", str(err))
    if m:
        return f"it holds a pickled object ({m.group(1)})"
    m = re.search(r"WeightsUnpickler error: (.+)", str(err), re.DOTALL)
    return f"not plain tensors ({m.group(1).strip().splitlines()[0] if m else 'a pickle or not a torch file'})"


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def best_checkpoint(checkpoint_dir: str | Path) -> Path:
    """``best.pt`` when there is one, else ``last.pt`` (the path, which may not exist)."""
    d = Path(checkpoint_dir)
    return d / BEST if (d / BEST).is_file() else d / LAST


def restore(model: Any, checkpoint_dir: str | Path, expect: dict[str, Any] | None = None,
            ledger: Ledger | None = None) -> Path:
    """Load the best (else last) checkpoint in ``checkpoint_dir`` into ``model``.

    A checkpoint records what it was trained for in ``extra`` (classes, architecture, ...);
    each key of ``expect`` that it records must match, so a model is never silently
    restored onto another dataset's vocabulary. ``ledger`` (the run's checksums) refuses a
    file changed since the run wrote it. Returns the checkpoint's path.
    """
    path = best_checkpoint(checkpoint_dir)
    if ledger is not None:
        ledger.verify(path)
    state = load_checkpoint(path)
    saved = state.get("extra", {})
    for key, value in (expect or {}).items():
        if key in saved and saved[key] != value:
            raise ZooError(f"{path}: checkpoint was trained on {key} {saved[key]!r}, but this run has {value!r}")
    model.load_state_dict(state["model"])
    return path


def _is_samples(data: Any) -> bool:
    """Whether ``data`` holds samples to batch here (else it already yields batches)."""
    from torch.utils.data import Dataset as TorchDataset

    return isinstance(data, (MappedDataset, TorchDataset))


def _loader(data: Any, s: TrainConfig, collate: Callable | None, epoch: int):
    """A DataLoader over ``data`` shuffled by ``seed + epoch``; other iterables as they are.

    Under a launcher with several processes (zoo.training.distributed) each rank gets its own part of
    the epoch's order (DistributedSampler, seeded the same way): the parts are disjoint and
    together the whole epoch (the last few samples repeat when the ranks don't divide it)."""
    import torch
    from torch.utils.data import DataLoader

    from zoo.training.distributed import initialised

    if not _is_samples(data):
        return data
    order: dict[str, Any] = {}
    if initialised():
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(data, shuffle=True, seed=s.seed)
        sampler.set_epoch(epoch)
        order["sampler"] = sampler
    else:
        g = torch.Generator()
        g.manual_seed(s.seed + epoch)
        order.update(shuffle=True, generator=g)
    return DataLoader(
        _SeenLog.wrap(data, epoch),
        batch_size=s.batch,
        collate_fn=collate,
        num_workers=s.workers,
        persistent_workers=False,
        drop_last=_drops_last(_rank_share(len(data)), s),
        **order,
    )


def _rank_share(n: int) -> int:
    """How many of ``n`` samples one rank sees per epoch (DistributedSampler pads to even parts)."""
    from zoo.training.distributed import initialised, world

    return math.ceil(n / world().size) if initialised() else n


def _drops_last(n: int, s: TrainConfig) -> bool:
    return n > s.batch and n % s.batch == 1  # a 1-sample batch breaks BatchNorm


def _iters_per_epoch(data: Any, s: TrainConfig) -> int | None:
    try:
        n = len(data)
    except TypeError:
        return None
    if not _is_samples(data):
        return n
    n = _rank_share(n)
    return n // s.batch if _drops_last(n, s) else math.ceil(n / s.batch)


class _SeenLog:
    """With ``ZOO_DEBUG_SEEN=<folder>``: the ids of the samples this rank loaded, per epoch,
    appended to ``<folder>/seen-rank<R>.jsonl`` (how tests see that ranks split an epoch).
    Off (the data as it is) without the variable; in-process loading only (workers=0)."""

    def __init__(self, data: Any, epoch: int, path: Path):
        self.data, self.epoch, self.path, self.ids = data, epoch, path, []

    @classmethod
    def wrap(cls, data: Any, epoch: int) -> Any:
        folder = os.environ.get("ZOO_DEBUG_SEEN")
        if not folder:
            return data
        from zoo.training.distributed import world

        return cls(data, epoch, Path(folder) / f"seen-rank{world().rank}.jsonl")

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Any:
        items = getattr(self.data, "items", None)
        self.ids.append(str(getattr(items[index], "id", index)) if items is not None else int(index))
        return self.data[index]

    def flush(self) -> None:
        import json

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"epoch": self.epoch, "ids": self.ids}) + "\n")


class EpochPlan:
    """How many epochs this training runs, re-planned once by a wall-clock ``budget``.

    Without a budget it is ``epochs``. With one, the first epoch (of this call) is timed, the
    epochs are set to what fits in the budget, and the learning-rate schedule, which reads
    :attr:`total_iters`, stretches to them; any later epoch that would overrun ends training
    after itself. ``spent`` carries the seconds of earlier, interrupted parts of the same run.
    """

    def __init__(self, epochs: int, iters_per_epoch: int, budget: float | None = None, spent: float = 0.0):
        self.epochs = int(epochs)
        self.iters_per_epoch = max(1, int(iters_per_epoch))
        self.budget = budget
        self.spent = spent
        self.replanned = False
        self.first_epoch = 0  # the first epoch of this call (a resumed run starts later)

    @property
    def total_iters(self) -> int:
        return self.iters_per_epoch * self.epochs

    def after_epoch(self, epoch: int, elapsed: float, log: logging.Logger) -> None:
        """Re-plan after the first timed epoch; end at ``epoch`` if the next one would overrun.

        ``elapsed`` is this call's training time so far (every epoch including ``epoch``).
        Called before the epoch is scored, so the last epoch is the one the protocol scores."""
        if not self.budget:
            return
        used = self.spent + elapsed
        if not self.replanned:
            self.replanned = True
            per_epoch = elapsed  # the first epoch of this call
            fit = epoch + 1 + int(max(0.0, self.budget - used) // max(per_epoch, 1e-9))
            log.info("budget %.0f s: the first epoch took %.1f s, so %d epoch(s) in all (was %d)",
                     self.budget, per_epoch, fit, self.epochs)
            self.epochs = max(epoch + 1, fit)
        mean = elapsed / max(1, epoch + 1 - self.first_epoch)
        if epoch + 1 < self.epochs and used + mean > self.budget:
            log.info("budget %.0f s: ending after epoch %d (another would end at %.0f s)",
                     self.budget, epoch + 1, used + mean)
            self.epochs = epoch + 1


def fit(
    model,
    data: Any,
    *,
    config: Any,
    device: str = "cpu",
    checkpoint_dir: str | Path | None = None,
    loss_fn: Callable | None = None,
    collate: Callable | None = None,
    val_fn: Callable | None = None,
    selection: Any = None,
    resume: bool = True,
    max_iters: int | None = None,
    extra: Mapping[str, Any] | None = None,
    log: logging.Logger | None = None,
    description: str = "train",
    ledger: Ledger | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` and leave checkpoints in ``checkpoint_dir``.

    model:      a ``torch.nn.Module`` (moved to ``device`` here)
    data:       samples: a :class:`MappedDataset` or ``torch.utils.data.Dataset``, batched
                here with ``collate`` (torch's default stacks tensors; :func:`collate_lists`
                keeps lists); anything else (a DataLoader, a list of batches) is taken
                as an iterable of ready batches and used as is every epoch
    config:     a :class:`TrainConfig` (a backend's ``Config``), or anything with the same
                attribute names (see :meth:`TrainConfig.of`)
    loss_fn:    ``loss_fn(model, batch) -> loss tensor | dict of loss tensors`` (summed),
                ``batch`` already on the device; default :func:`loss_dict_fn`
    val_fn:     ``val_fn(model) -> float``, higher is better, run every ``val_every``
                epochs and after the last under ``no_grad`` with the model in eval mode;
                picks ``best.pt``
    selection:  the :class:`~zoo.selection.Selection` the backend's ``fit`` got: whether
                ``val_fn`` runs at all, which epoch is kept, early stopping; each score and
                the kept epoch are recorded in it
    max_iters:  stop after this many optimiser steps in total (tests, benchmarks); the
                schedule still spans all epochs
    extra:      plain values stored in every checkpoint (class names, the resolved config)
    ledger:     the run's checksums (``RunContext.ledger``): each checkpoint written is
                recorded, and ``last.pt`` is checked before a resume reads it
    """
    import torch

    from zoo.training.distributed import initialised, share, world

    s = TrainConfig.of(config)
    log = log or _log
    loss_fn = loss_fn or loss_dict_fn
    if "," in device:
        raise ZooError(f"--device {device}: this backend trains one device per process; start one process "
                       "per GPU with torchrun (see the README, 'Training on several GPUs')")
    dev = torch.device(device)
    writer = world().main  # under a launcher, rank 0 alone writes checkpoints
    use_amp = bool(s.amp) and dev.type == "cuda"
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None

    seed_everything(s.seed)
    model.to(dev)
    optimizer = make_optimizer(model, s)
    per_epoch = _iters_per_epoch(data, s)
    plan = EpochPlan(s.epochs, per_epoch or 1, s.budget)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, plan.total_iters, s))
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    params = [p for g in optimizer.param_groups for p in g["params"]]

    result = TrainResult()
    # the protocol (zoo.selection): score only when it asks; keep the best, or the last
    scoring = val_fn is not None and (selection is None or selection.active)
    keep_best = scoring and (selection is None or selection.protocol.rule == "best")
    if selection is not None:
        selection.every = max(s.val_every, 1)
    stopped_after = None
    start_epoch = 0
    if resume and ckpt_dir is not None and (ckpt_dir / LAST).is_file():
        if ledger is not None:
            ledger.verify(ckpt_dir / LAST)
        state = load_checkpoint(ckpt_dir / LAST, map_location=dev)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch = int(state["epoch"]) + 1
        result.history = list(state.get("history", []))
        result.best_score = float(state.get("best_score", -math.inf))
        result.best_epoch = int(state.get("best_epoch", -1))
        result.iterations = int(state.get("iterations", 0))
        result.resumed_from = start_epoch - 1
        plan.epochs = max(plan.epochs, int(state.get("planned_epochs", 0)))
        plan.spent = float(state.get("train_seconds", 0.0))
        log.info("resuming from %s after epoch %d", ckpt_dir / LAST, start_epoch)
        for row in result.history:
            if selection is not None and "val" in row:
                selection.record(int(row["epoch"]), row["val"])

    # several processes: gradients averaged across ranks by DistributedDataParallel; the
    # plain module keeps being what is saved, scored and restored
    trained = model
    if initialised():
        from torch.nn.parallel import DistributedDataParallel

        # find_unused_parameters: backends build models with parts a forward may skip (an
        # encoder cut short by encoder_depth, a detector's unused heads); DDP must not wait
        # for their gradients. It costs one graph walk per step.
        trained = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                          find_unused_parameters=True)
        log.info("%s: DistributedDataParallel, rank %d of %d", description, world().rank, world().size)

    t0 = time.perf_counter()
    plan.first_epoch = start_epoch
    epoch = start_epoch - 1
    while epoch + 1 < plan.epochs:
        epoch += 1
        if max_iters is not None and result.iterations >= max_iters:
            break
        model.train()
        t_epoch = time.perf_counter()
        sums: dict[str, float] = {}
        steps = 0
        loader = _loader(data, s, collate, epoch)
        for batch in track(loader, f"{description} epoch {epoch + 1}/{plan.epochs}", total=per_epoch):
            batch = to_device(batch, dev)
            with torch.autocast(dev.type, enabled=use_amp):
                out = loss_fn(trained, batch)
            parts = out if isinstance(out, Mapping) else {"loss": out}
            loss = sum(parts.values()) if isinstance(out, Mapping) else out
            if not torch.isfinite(loss):
                raise ZooError(
                    f"training diverged: loss is {loss.item()} at epoch {epoch + 1}, "
                    f"iteration {steps + 1}; lower lr (now {s.lr}) or raise warmup_iters"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if s.grad_clip and s.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, s.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            steps += 1
            result.iterations += 1
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            if isinstance(out, Mapping):
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
            if max_iters is not None and result.iterations >= max_iters:
                break
        if steps == 0:
            raise ZooError("no training batches: the training set is empty")
        if isinstance(getattr(loader, "dataset", None), _SeenLog):
            loader.dataset.flush()

        row = {k: v / steps for k, v in sums.items()}
        row.update(epoch=epoch, iterations=steps, lr=optimizer.param_groups[0]["lr"])
        plan.after_epoch(epoch, time.perf_counter() - t0, log)
        if s.budget:
            plan.epochs = share(plan.epochs)  # every rank stops where rank 0's clock says
        validate = scoring and ((epoch + 1) % max(s.val_every, 1) == 0 or epoch == plan.epochs - 1)
        score = -math.inf  # not scored this epoch: cannot become the best
        if validate:
            model.eval()
            with torch.no_grad():
                score = share(float(val_fn(model)))  # one verdict for all ranks (early stopping)
            model.train()
            row["val"] = score
            if selection is not None:
                selection.record(epoch, score)
        row["seconds"] = time.perf_counter() - t_epoch
        result.history.append(row)
        # ties go to the later epoch: a from-scratch detector scores AP 0 for many epochs,
        # and the untrained first one must not win that tie
        improved = keep_best and score > -math.inf and score >= result.best_score
        if improved:
            result.best_score, result.best_epoch = score, epoch
        if not keep_best:
            result.best_epoch = epoch  # the protocol keeps the last weights
        log.info(
            "%s epoch %d/%d: loss %.4f%s (%.1f s)",
            description, epoch + 1, plan.epochs, row["loss"],
            f", val {row['val']:.4f}" if "val" in row else "", row["seconds"],
        )

        if ckpt_dir is not None and writer:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if use_amp else {},
                "epoch": epoch,
                "iterations": result.iterations,
                "best_score": result.best_score,
                "best_epoch": result.best_epoch,
                "history": result.history,
                "planned_epochs": plan.epochs,
                "train_seconds": plan.spent + time.perf_counter() - t0,
                "extra": dict(extra or {}),
            }
            best = [ckpt_dir / BEST] if improved else []
            result.last_path = save_checkpoint(state, ckpt_dir / LAST, copies=best, ledger=ledger)
            result.best_path = best[0] if best else result.best_path
        if ckpt_dir is not None:
            _wait_for_writer()  # every rank leaves the epoch with the checkpoint on disk
        if validate and selection is not None and selection.should_stop(epoch):
            stopped_after = epoch
            log.info("%s: early stopping after epoch %d (%d epoch(s) without improvement on the selection split)",
                     description, epoch + 1, selection.protocol.patience)
            break

    result.seconds = time.perf_counter() - t0
    if selection is not None and result.history:
        selection.choose(result.best_epoch, stopped_after)
    if ckpt_dir is not None:
        result.last_path = result.last_path or (ckpt_dir / LAST if (ckpt_dir / LAST).is_file() else None)
        result.best_path = result.best_path or (ckpt_dir / BEST if (ckpt_dir / BEST).is_file() else None)
        # the model leaves fit() holding the weights the protocol kept, as load() restores them,
        # so a backend predicts the same before and after a reload
        if result.history and result.best_epoch != result.history[-1]["epoch"] and result.best_path:
            model.load_state_dict(load_checkpoint(result.best_path, map_location=dev)["model"])
    return result


def _wait_for_writer() -> None:
    from zoo.training.distributed import barrier

    barrier()


def predict_batches(items: Sequence[Any], batch: int, description: str = "predict") -> Iterable[list[Any]]:
    """``items`` in consecutive lists of ``batch`` (the last may be shorter), with a progress bar."""
    chunks = [list(items[i : i + batch]) for i in range(0, len(items), max(batch, 1))]
    return track(chunks, description, total=len(chunks))
