"""zoo's parts of a detectron2 training: hooks on detectron2's own trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detectron2.engine import HookBase

from zoo.progress import track
from zoo.training import BEST, copy_checkpoint, save_checkpoint


class ProgressBar(HookBase):
    """zoo's progress bar (stderr, terminals only) over the iterations still to run."""

    def __init__(self, description: str):
        self.description = description
        self._bar = None

    def before_train(self):
        steps = range(self.trainer.start_iter, self.trainer.max_iter)
        self._bar = iter(track(steps, self.description, total=len(steps)))
        next(self._bar, None)

    def after_step(self):
        next(self._bar, None)

    def after_train(self):
        if self._bar is not None:
            self._bar.close()


class EpochCheckpoints(HookBase):
    """Every ``per_epoch`` iterations and at the end: a log line with the epoch's mean loss,
    and zoo's tensor-only checkpoint (state dicts, the iteration, ``extra``) at ``path``,
    its sha256 recorded in the run's ledger."""

    def __init__(self, path: Path, per_epoch: int, scheduler, extra: dict[str, Any], ctx, name: str):
        self.path = path
        self.per_epoch = per_epoch
        self.scheduler = scheduler
        self.extra = extra
        self.ctx = ctx
        self.log = ctx.log
        self.name = name
        self.last_loss = float("nan")

    def after_step(self):
        done = self.trainer.iter + 1
        if done % self.per_epoch and done != self.trainer.max_iter:
            return
        history = self.trainer.storage.history("total_loss")
        self.last_loss = history.avg(self.per_epoch)
        epochs = -(-self.trainer.max_iter // self.per_epoch)
        self.log.info("%s epoch %d/%d: loss %.4f", self.name, -(-done // self.per_epoch), epochs, self.last_loss)
        save_checkpoint(
            {
                "model": self.trainer.model.state_dict(),
                "optimizer": self.trainer.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "iteration": done,
                "extra": self.extra,
            },
            self.path,
        )
        self.ctx.ledger.record(self.path)


class BudgetStop(HookBase):
    """``--budget`` on detectron2's loop, by the shared loop's rule (zoo.training.EpochPlan):
    the first epoch timed and the epochs re-planned, training ended after an epoch when the
    next would overrun, or inside one when the next step would. Registered first: it
    shortens ``max_iter`` to the step it stops after, so the checkpoint and selection hooks
    after it take that step as the last; the next ``before_step`` ends the loop."""

    def __init__(self, plan, per_epoch: int, log):
        self.plan, self.per_epoch, self.log = plan, per_epoch, log
        self.stopped = False

    def before_train(self):
        self.plan.start()

    def before_step(self):
        if self.stopped:
            raise StopEarly

    def after_step(self):
        done = self.trainer.iter + 1
        over = self.plan.after_step()
        if done >= self.trainer.max_iter or not self.plan.budget:
            return
        if done % self.per_epoch == 0:
            epoch = done // self.per_epoch - 1
            self.plan.after_epoch(epoch, self.plan.elapsed(), self.log)
            self.stopped = epoch + 1 >= self.plan.epochs
        elif over:
            self.plan.cut_short = self.stopped = True
            self.log.info("budget %.0f s: stopping inside epoch %d after %d step(s) (another would overrun)",
                          self.plan.budget, done // self.per_epoch + 1, self.plan.steps)
        if self.stopped:
            self.plan.epochs = -(-done // self.per_epoch)
            self.trainer.max_iter = done


class StopEarly(BaseException):
    """Raised by :class:`EpochSelection` to end detectron2's loop (which has no stop flag).
    Not an ``Exception``, so detectron2 does not log it as a crash; ``after_train`` still runs."""


class EpochSelection(HookBase):
    """zoo's model-selection protocol (zoo.selection) on detectron2's loop. Registered after
    :class:`EpochCheckpoints`: at the end of each epoch, when the protocol scores, the model
    being trained is scored on the selection split (``val_fn``: zoo's evaluator), the best
    epoch's ``last.pt`` becomes ``best.pt``, and ``patience`` ends training."""

    def __init__(self, selection, val_fn, per_epoch: int, last: Path, ctx):
        self.selection = selection
        self.val_fn = val_fn
        self.per_epoch = per_epoch
        self.last = last
        self.ctx = ctx
        self.epoch = -1  # the last epoch completed
        self.stopped_after: int | None = None

    def after_step(self):
        import torch

        done = self.trainer.iter + 1
        if done % self.per_epoch and done != self.trainer.max_iter:
            return
        self.epoch = -(-done // self.per_epoch) - 1
        if not self.selection.active:
            return
        model = self.trainer.model
        model.eval()
        with torch.no_grad():
            score = float(self.val_fn(model))
        model.train()
        self.selection.record(self.epoch, score)
        self.ctx.log.info("selection split: %.4f after epoch %d", score, self.epoch + 1)
        if self.selection.keeps_best and self.selection.best_epoch() == self.epoch:
            self.ctx.ledger.record(copy_checkpoint(self.last, self.last.parent / BEST))
        if self.selection.should_stop(self.epoch) and done != self.trainer.max_iter:
            self.stopped_after = self.epoch
            raise StopEarly
