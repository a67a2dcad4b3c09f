"""zoo's parts of a detectron2 training: hooks on detectron2's own trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detectron2.engine import HookBase

from zoo.progress import track
from zoo.training import save_checkpoint


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
