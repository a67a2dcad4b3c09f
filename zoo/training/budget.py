"""A wall-clock training budget: how many epochs fit, re-planned after the first one is timed."""

from __future__ import annotations

import logging


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
