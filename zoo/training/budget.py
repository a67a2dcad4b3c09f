"""A wall-clock training budget: how many epochs fit, re-planned after the first one is timed,
and a stop inside an epoch when even that one would overrun."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


def describe_budget(record: dict) -> str:
    """A run's ``manifest.budget`` in words (the screen, report.md)."""
    text = f"--budget {record['seconds']:.0f} s"
    if "fit_seconds" in record:
        text += f": trained {record['fit_seconds']:.0f} s"
    if "epochs" in record:
        text += (f", {record['epochs']} epoch(s) of the {record.get('epochs_asked', '?')} asked"
                 + ("; the last one stopped inside, where another step would have overrun"
                    if record.get("stopped_inside_epoch") else ""))
    return text


class EpochPlan:
    """How many epochs this training runs, re-planned once by a wall-clock ``budget``.

    Without a budget it is ``epochs``. With one, the first epoch (of this call) is timed, the
    epochs are set to what fits in the budget, and the learning-rate schedule, which reads
    :attr:`total_iters`, stretches to them; any later epoch that would overrun ends training
    after itself. ``spent`` carries the seconds of earlier, interrupted parts of the same run.

    Inside an epoch (the first one included, which may alone be longer than the budget),
    :meth:`after_step` ends training when one more optimiser step, at this call's mean, would
    end past the budget: a budget is kept to one step. ``clock`` (seconds; tests inject
    their own) times it all from :meth:`start`.
    """

    def __init__(self, epochs: int, iters_per_epoch: int, budget: float | None = None, spent: float = 0.0,
                 clock: Callable[[], float] = time.perf_counter):
        self.epochs = int(epochs)
        self.asked = int(epochs)  # before the budget had its say
        self.iters_per_epoch = max(1, int(iters_per_epoch))
        self.budget = budget
        self.spent = spent
        self.replanned = False
        self.first_epoch = 0  # the first epoch of this call (a resumed run starts later)
        self.clock = clock
        self.t0 = clock()
        self.steps = 0  # optimiser steps in this call
        self.stepped = 0.0  # seconds from start() to the end of the last step
        self.cut_short = False  # training ended inside an epoch

    def start(self) -> None:
        """This call's training starts now."""
        self.t0, self.steps, self.stepped = self.clock(), 0, 0.0

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def after_step(self) -> bool:
        """Count one optimiser step; True when the next step, at the mean step of this call,
        would end past the budget (the loop then stops inside the epoch: :attr:`cut_short`)."""
        self.steps += 1
        self.stepped = self.elapsed()
        if not self.budget:
            return False
        return self.spent + self.stepped * (self.steps + 1) / self.steps > self.budget

    def record(self) -> dict | None:
        """What the budget did (the run's manifest and report show it); None without one."""
        if not self.budget:
            return None
        return {"epochs": self.epochs, "epochs_asked": self.asked, "stopped_inside_epoch": self.cut_short,
                "step_seconds": self.step_seconds()}

    def step_seconds(self) -> float | None:
        """The mean optimiser step of this call (what "kept to one step" is measured in)."""
        return round(self.stepped / self.steps, 3) if self.steps else None

    @property
    def total_iters(self) -> int:
        return self.iters_per_epoch * self.epochs

    def after_epoch(self, epoch: int, elapsed: float, log: logging.Logger) -> None:
        """Re-plan after the first timed epoch; end at ``epoch`` if the next one would overrun.

        ``elapsed`` is this call's training time so far (every epoch including ``epoch``).
        Called before the epoch is scored, so the last epoch is the one the protocol scores."""
        if not self.budget:
            return
        if self.cut_short:  # stopped inside this epoch: it is the last
            log.info("budget %.0f s: stopped inside epoch %d after %d step(s) this run (another would overrun)",
                     self.budget, epoch + 1, self.steps)
            self.epochs = epoch + 1
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
