"""The shared training loop, :func:`fit`, as named steps: resume, one epoch, scoring and
keeping the best, the checkpoint, early stopping. See :mod:`zoo.training` for how a
backend uses it."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.checksums import Ledger
from zoo.errors import ZooError
from zoo.progress import track
from zoo.training.budget import EpochPlan
from zoo.training.checkpoints import BEST, LAST, load_checkpoint, save_checkpoint
from zoo.training.config import TrainConfig
from zoo.training.cpu import compute_plan, record
from zoo.training.data import _SeenLog, epoch_loader, iters_per_epoch, to_device
from zoo.training.distributed import barrier, initialised, share, world
from zoo.training.optim import Optimisation
from zoo.training.seeding import seed_everything

_log = logging.getLogger("zoo.training")


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
    budget: dict[str, Any] | None = None  # what --budget did (EpochPlan.record)

    @property
    def final_loss(self) -> float:
        return self.history[-1]["loss"] if self.history else math.nan

    @property
    def reported_history(self) -> list[dict[str, float]]:
        """``history`` with 1-based epochs, as a backend's ``fit`` returns it (``"history"``,
        logged per epoch by ``--track``, zoo.pipeline.tracking)."""
        return [{**row, "epoch": row["epoch"] + 1} for row in self.history]

    def summary(self) -> dict[str, Any]:
        """What a backend's ``fit`` returns (the run's record of training): the final loss,
        epochs, iterations, seconds and the history."""
        out = {"loss": self.final_loss, "epochs": len(self.history), "iterations": self.iterations,
               "train_seconds": round(self.seconds, 2), "history": self.reported_history}
        return {**out, "budget": self.budget} if self.budget else out


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
    bf16: bool = False,
    channels_last: bool = False,
    clock: Callable[[], float] = time.perf_counter,
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
    bf16:       whether the model may train under bf16 autocast on a CPU that multiplies
                bf16 natively (zoo.training.cpu; ``amp=false`` in the config turns it off):
                a backend opts in once its quality in bf16 was measured to hold
    channels_last: a conv net fed ``(N, C, H, W)`` batches: the model and every 4-d batch
                tensor in channels-last memory format (oneDNN's fast layout on a CPU)
    clock:      what ``--budget`` is timed with (seconds; tests inject their own)
    """
    s = TrainConfig.of(config)
    dev = _one_device(device)
    seed_everything(s.seed)
    compute = compute_plan(dev.type, amp=s.amp, bf16=bf16, channels_last=channels_last)
    model.to(dev)
    loop = _Loop(model, data, s, dev, compute, loss_fn=loss_fn or loss_dict_fn, collate=collate,
                 checkpoint_dir=checkpoint_dir, extra=extra, ledger=ledger, log=log or _log,
                 description=description, max_iters=max_iters, clock=clock)
    loop.protocol(val_fn, selection)
    if resume:
        loop.resume()
    return loop.run()


def fit_backend(backend: Any, model, data: Any, selection: Any, *, extra: Mapping[str, Any], description: str,
                loss_fn: Callable | None = None, collate: Callable | None = None, bf16: bool = False,
                channels_last: bool = False) -> TrainResult:
    """:func:`fit` as a :class:`~zoo.backend.Backend`'s ``fit`` calls it: its ``config``, and
    from its ``ctx`` the device, checkpoint folder, ``--resume``, log and ledger; the
    selection protocol scored with the backend's own ``predict``, which runs ``model`` (set
    as ``backend.model`` first) while the selection split is scored."""
    ctx = backend.ctx
    backend.model = model
    return fit(model, data, config=backend.config, device=ctx.device, checkpoint_dir=ctx.checkpoint_dir,
               resume=ctx.resume, loss_fn=loss_fn, collate=collate, selection=selection,
               val_fn=selection.scorer(backend.predict), log=ctx.log, description=description,
               extra=extra, ledger=ctx.ledger, bf16=bf16, channels_last=channels_last)


def _one_device(device: str):
    import torch

    if "," in device:
        raise ZooError(f"--device {device}: this backend trains one device per process; start one process "
                       "per GPU with torchrun (see the README, 'Training on several GPUs')")
    return torch.device(device)


class _Loop:
    """One call of :func:`fit`: the model, its optimisation, the epoch plan, the protocol
    and the checkpoints, and the steps that move them along."""

    def __init__(self, model, data: Any, s: TrainConfig, dev, compute, *, loss_fn: Callable, collate: Callable | None,
                 checkpoint_dir: str | Path | None, extra: Mapping[str, Any] | None, ledger: Ledger | None,
                 log: logging.Logger, description: str, max_iters: int | None,
                 clock: Callable[[], float] = time.perf_counter):
        self.model, self.data, self.s, self.dev = model, data, s, dev
        self.loss_fn, self.collate = loss_fn, collate
        self.ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.extra, self.ledger, self.log = dict(extra or {}), ledger, log
        self.description, self.max_iters = description, max_iters
        self.writer = world().main  # under a launcher, rank 0 alone writes checkpoints
        self.compute = compute
        self.use_amp = compute.precision == "fp16"  # the gradient scaler: fp16 only (bf16 has fp32's range)
        self.apply_compute()
        self.per_epoch = iters_per_epoch(data, s)
        self.plan = EpochPlan(s.epochs, self.per_epoch or 1, s.budget, clock=clock)
        self.optim = Optimisation(model, s, self.plan, self.use_amp)
        self.result = TrainResult()
        self.start_epoch = 0
        self.t0 = 0.0  # when this call's training started
        # the protocol (zoo.selection): score only when it asks; keep the best, or the last
        self.val_fn: Callable | None = None
        self.selection: Any = None
        self.scoring = self.keep_best = False

    # -- before the first epoch ----------------------------------------------------------------

    def apply_compute(self) -> None:
        """The threads and memory format :attr:`compute` says, stated in the log and recorded
        for the run's manifest."""
        import torch

        c = self.compute
        if c.threads:
            torch.set_num_threads(c.threads)
        if c.channels_last:
            self.model.to(memory_format=torch.channels_last)
        record(c)
        self.log.info("%s: %s%s, %s threads (%s)", self.description, c.precision,
                      ", channels_last" if c.channels_last else "", c.threads or "torch's", c.reason)

    def protocol(self, val_fn: Callable | None, selection: Any) -> None:
        """Whether epochs are scored (``val_fn``, when the selection protocol asks) and
        whether the best is kept (else the last)."""
        self.val_fn, self.selection = val_fn, selection
        self.scoring = val_fn is not None and (selection is None or selection.active)
        self.keep_best = self.scoring and (selection is None or selection.protocol.rule == "best")
        if selection is not None:
            selection.every = max(self.s.val_every, 1)

    def resume(self) -> None:
        """Continue a ``last.pt`` already in the checkpoint folder from its next epoch: the
        weights, optimisation, history, best score, plan and time spent."""
        path = self.ckpt_dir / LAST if self.ckpt_dir is not None else None
        if path is None or not path.is_file():
            return
        if self.ledger is not None:
            self.ledger.verify(path)
        state = load_checkpoint(path, map_location=self.dev)
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state)
        self.start_epoch = int(state["epoch"]) + 1
        r = self.result
        r.history = list(state.get("history", []))
        r.best_score = float(state.get("best_score", -math.inf))
        r.best_epoch = int(state.get("best_epoch", -1))
        r.iterations = int(state.get("iterations", 0))
        r.resumed_from = self.start_epoch - 1
        self.plan.epochs = max(self.plan.epochs, int(state.get("planned_epochs", 0)))
        self.plan.spent = float(state.get("train_seconds", 0.0))
        self.log.info("resuming from %s after epoch %d", path, self.start_epoch)
        for row in r.history:
            if self.selection is not None and "val" in row:
                self.selection.record(int(row["epoch"]), row["val"])

    def trained_module(self):
        """What the loss sees: the model, or under several processes the model wrapped in
        DistributedDataParallel (gradients averaged across ranks). The plain module keeps
        being what is saved, scored and restored."""
        if not initialised():
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        # find_unused_parameters: backends build models with parts a forward may skip (an
        # encoder cut short by encoder_depth, a detector's unused heads); DDP must not wait
        # for their gradients. It costs one graph walk per step.
        trained = DistributedDataParallel(self.model, device_ids=[self.dev.index] if self.dev.type == "cuda" else None,
                                          find_unused_parameters=True)
        self.log.info("%s: DistributedDataParallel, rank %d of %d", self.description, world().rank, world().size)
        return trained

    # -- the epochs ----------------------------------------------------------------------------

    def run(self) -> TrainResult:
        trained = self.trained_module()
        self.t0 = time.perf_counter()
        self.plan.start()
        self.plan.first_epoch = self.start_epoch
        stopped_after = None
        epoch = self.start_epoch - 1
        while epoch + 1 < self.plan.epochs:
            epoch += 1
            if self.out_of_iterations():
                break
            t_epoch = time.perf_counter()
            row = self.train_epoch(trained, epoch)
            self.replan(epoch)
            validate = self.scoring and self.due(epoch)
            score = self.score(epoch, row) if validate else -math.inf  # unscored: never the best
            row["seconds"] = time.perf_counter() - t_epoch
            improved = self.keep(epoch, row, score)
            self.save(epoch, improved)
            if validate and self.selection is not None and self.selection.should_stop(epoch):
                stopped_after = epoch
                self.log.info("%s: early stopping after epoch %d (%d epoch(s) without improvement on the "
                              "selection split)", self.description, epoch + 1, self.selection.protocol.patience)
                break
        return self.finish(stopped_after)

    def out_of_iterations(self) -> bool:
        return self.max_iters is not None and self.result.iterations >= self.max_iters

    def train_epoch(self, trained, epoch: int) -> dict[str, float]:
        """One pass over the data: a step per batch. Returns the epoch's history row (mean
        losses, iterations, the learning rate at its end)."""
        import torch

        self.model.train()
        sums: dict[str, float] = {}
        steps = 0
        loader = epoch_loader(self.data, self.s, self.collate, epoch)
        label = f"{self.description} epoch {epoch + 1}/{self.plan.epochs}"
        for batch in track(loader, label, total=self.per_epoch):
            batch = to_device(batch, self.dev, channels_last=self.compute.channels_last)
            with torch.autocast(self.dev.type, dtype=self.compute.autocast_dtype,
                                enabled=self.compute.autocast_dtype is not None):
                out = self.loss_fn(trained, batch)
            parts = out if isinstance(out, Mapping) else {"loss": out}
            loss = sum(parts.values()) if isinstance(out, Mapping) else out
            if not torch.isfinite(loss):
                raise ZooError(
                    f"training diverged: loss is {loss.item()} at epoch {epoch + 1}, "
                    f"iteration {steps + 1}; lower lr (now {self.s.lr}) or raise warmup_iters"
                )
            self.optim.step(loss)
            steps += 1
            self.result.iterations += 1
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            if isinstance(out, Mapping):
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
            if self.out_of_iterations():
                break
            if self.plan.after_step() and steps != self.per_epoch and self.stop_inside_epoch():
                break
        if steps == 0:
            raise ZooError("no training batches: the training set is empty")
        if isinstance(getattr(loader, "dataset", None), _SeenLog):
            loader.dataset.flush()
        row = {k: v / steps for k, v in sums.items()}
        row.update(epoch=epoch, iterations=steps, lr=self.optim.lr)
        return row

    def replan(self, epoch: int) -> None:
        """The budget's say, before the epoch is scored (the last epoch is the one scored)."""
        self.plan.after_epoch(epoch, self.plan.elapsed(), self.log)
        if self.s.budget:
            self.plan.epochs = share(self.plan.epochs)  # every rank stops where rank 0's clock says

    def stop_inside_epoch(self) -> bool:
        """The budget ends training inside this epoch; in one process only: ranks under a
        launcher stop on epoch boundaries, where they agree."""
        self.plan.cut_short = not initialised()
        return self.plan.cut_short

    def due(self, epoch: int) -> bool:
        """Scored every ``val_every`` epochs and after the last one."""
        return (epoch + 1) % max(self.s.val_every, 1) == 0 or epoch == self.plan.epochs - 1

    def score(self, epoch: int, row: dict[str, float]) -> float:
        """``val_fn`` on the model in eval mode, without gradients; recorded in the row and
        the selection."""
        import torch

        self.model.eval()
        with torch.no_grad():
            score = share(float(self.val_fn(self.model)))  # one verdict for all ranks (early stopping)
        self.model.train()
        row["val"] = score
        if self.selection is not None:
            self.selection.record(epoch, score)
        return score

    def keep(self, epoch: int, row: dict[str, float], score: float) -> bool:
        """Add the epoch to the history and say whether it is the new best."""
        r = self.result
        r.history.append(row)
        # ties go to the later epoch: a from-scratch detector scores AP 0 for many epochs,
        # and the untrained first one must not win that tie
        improved = self.keep_best and score > -math.inf and score >= r.best_score
        if improved:
            r.best_score, r.best_epoch = score, epoch
        if not self.keep_best:
            r.best_epoch = epoch  # the protocol keeps the last weights
        self.log.info(
            "%s epoch %d/%d: loss %.4f%s (%.1f s)",
            self.description, epoch + 1, self.plan.epochs, row["loss"],
            f", val {row['val']:.4f}" if "val" in row else "", row["seconds"],
        )
        return improved

    def save(self, epoch: int, improved: bool) -> None:
        """``last.pt`` (and ``best.pt`` when improved, a link to it), by rank 0; every rank
        leaves the epoch with the checkpoint on disk."""
        if self.ckpt_dir is None:
            return
        if self.writer:
            r = self.result
            state = {
                "model": self.model.state_dict(),
                **self.optim.state_dict(),
                "epoch": epoch,
                "iterations": r.iterations,
                "best_score": r.best_score,
                "best_epoch": r.best_epoch,
                "history": r.history,
                "planned_epochs": self.plan.epochs,
                "train_seconds": self.plan.spent + self.plan.elapsed(),
                "extra": self.extra,
            }
            best = [self.ckpt_dir / BEST] if improved else []
            r.last_path = save_checkpoint(state, self.ckpt_dir / LAST, copies=best, ledger=self.ledger)
            r.best_path = best[0] if best else r.best_path
        _wait_for_writer()

    # -- after the last epoch ------------------------------------------------------------------

    def finish(self, stopped_after: int | None) -> TrainResult:
        """Tell the selection what was kept, and leave the model holding those weights, as
        ``load()`` restores them, so a backend predicts the same before and after a reload."""
        r = self.result
        r.seconds = time.perf_counter() - self.t0
        r.budget = self.plan.record()
        if self.selection is not None and r.history:
            self.selection.choose(r.best_epoch, stopped_after)
        if self.ckpt_dir is not None:
            last, best = self.ckpt_dir / LAST, self.ckpt_dir / BEST
            r.last_path = r.last_path or (last if last.is_file() else None)
            r.best_path = r.best_path or (best if best.is_file() else None)
            if r.history and r.best_epoch != r.history[-1]["epoch"] and r.best_path:
                self.model.load_state_dict(load_checkpoint(r.best_path, map_location=self.dev)["model"])
        return r


def _wait_for_writer() -> None:
    barrier()
