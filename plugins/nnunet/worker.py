"""nnU-Net's pipeline in its own process: ``python -m zoo.plugins.nnunet.worker JOB.json``.

nnunetv2 reads ``nnUNet_raw`` / ``nnUNet_preprocessed`` / ``nnUNet_results`` once, when it
is imported; the backend sets them (into the run folder) in this process's environment
only, never in zoo's. The job file says what to run:

1. nnU-Net's fingerprint extraction (with its dataset integrity check), experiment planning
   and preprocessing of the ``2d`` configuration, exactly as ``nnUNetv2_plan_and_preprocess``;
2. ``splits_final.json`` (fold 0 = zoo's training images / its validation images);
3. nnU-Net's trainer (:class:`nnUNetTrainer`) for the requested epochs and iterations;
4. zoo's checkpoint: the trained network's tensors and nnU-Net's plans and dataset.json as
   JSON text (read back with ``torch.load(weights_only=True)``, never a pickle).

Its child processes never fork from it (:func:`fork_free_children`): this process runs torch,
whose OpenMP threads a forked child inherits as a pool it believes alive; the child's first
parallel op then waits on a futex forever (seen as a stalled ``--budget 1m`` run).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def fork_free_children() -> None:
    """Every child this process starts through ``multiprocessing``'s default context (nnU-Net's
    file-listing ``Pool(12)``, batchgenerators' augmentation workers) forks from a fresh,
    single-threaded server instead of from this torch-threaded process. nnU-Net's other pools
    already ``spawn``. The server preloads what nnU-Net's pools run, so a child starts at once."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        multiprocessing.set_forkserver_preload(["nnunetv2.utilities.utils"])
        multiprocessing.set_start_method("forkserver", force=True)
    else:  # macOS and Windows spawn by default already
        multiprocessing.set_start_method("spawn", force=True)


def fingerprint_extractor(pixels: int):
    """nnU-Net's fingerprint extractor, drawing at most ``pixels`` (the raw dataset's pixel
    count) foreground intensities in all. nnU-Net draws 10^7 whatever the dataset, with
    replacement: for the demo's 96 images of 160x160 that is 40 draws per pixel, 1.2 GB sent
    back through its pool, and 70 s of a one-minute budget; the statistics it keeps (mean,
    std, percentiles) come out the same from a sample the size of the data."""
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import (
        DatasetFingerprintExtractor,
    )

    class SampledToTheData(DatasetFingerprintExtractor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.num_foreground_voxels_for_intensitystats = min(self.num_foreground_voxels_for_intensitystats,
                                                                 max(pixels, 1))

    return SampledToTheData


def plan_and_preprocess(dataset_id: int, planner: str, processes: int, pixels: int) -> dict:
    """nnU-Net's fingerprint, plans (``nnUNetPlans``) and the preprocessed ``2d`` data."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        plan_experiments,
        preprocess,
    )

    extract_fingerprint_dataset(dataset_id, fingerprint_extractor(pixels), num_processes=processes,
                                check_dataset_integrity=True, clean=True, verbose=False, show_progress_bar=False)
    plans_identifier = plan_experiments([dataset_id], experiment_planner_class_name=planner)
    preprocess([dataset_id], plans_identifier, configurations=("2d",), num_processes=(processes,),
               verbose=False, show_progress_bar=False)
    return {"plans_identifier": plans_identifier}


def train(job: dict) -> None:
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json, save_json
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    torch.manual_seed(job["seed"])
    folder = Path(nnUNet_preprocessed) / job["dataset_name"]
    plans = load_json(str(folder / f"{job['plans_identifier']}.json"))
    dataset_json = load_json(str(folder / "dataset.json"))
    save_json([{"train": job["train_cases"], "val": job["val_cases"]}], str(folder / "splits_final.json"))
    plans["continue_training"] = False  # what nnUNetv2_train passes without --c

    trainer = nnUNetTrainer(plans=plans, configuration="2d", fold=0, dataset_json=dataset_json,
                            device=torch.device(job["device"]))
    # nnU-Net's defaults are 1000 epochs of 250 iterations; zoo's --epochs and the backend's
    # iterations_per_epoch replace them (a budget nnU-Net's own variants hard-code).
    trainer.num_epochs = job["epochs"]
    trainer.num_iterations_per_epoch = job["iterations_per_epoch"]
    trainer.num_val_iterations_per_epoch = job["val_iterations_per_epoch"]
    # nnU-Net's own flag (nnUNetv2_train --disable_checkpointing): zoo never reads nnU-Net's
    # checkpoints (it writes its own, tensors only, below), and each is a pickle of the network
    # and its optimiser written at the best epoch and at the end: seconds of a short budget
    trainer.disable_checkpointing = True
    run_within_budget(trainer, job)

    network = trainer.network
    network = getattr(network, "_orig_mod", network)  # torch.compile's wrapper
    network = getattr(network, "module", network)  # DDP's
    logged = {k: trainer.logger.get_value(k, step=None) for k in ("train_losses", "val_losses", "mean_fg_dice")}
    history = [
        {"epoch": e, "loss": float(logged["train_losses"][e]), "val_loss": float(logged["val_losses"][e]),
         "pseudo_dice": float(logged["mean_fg_dice"][e])}
        for e in range(len(logged["train_losses"]))
    ]
    torch.save({
        "model": {k: v.detach().cpu() for k, v in network.state_dict().items()},
        "history": history,
        "budget": job.get("budget_record"),  # what --budget did (plain values)
        "extra": {
            **job["identity"],
            "plans": json.dumps(plans),
            "dataset_json": json.dumps(dataset_json),
            "trainer": type(trainer).__name__,
            "mirroring_axes": [int(a) for a in (trainer.inference_allowed_mirroring_axes or ())],
        },
    }, job["checkpoint"])


class _BudgetSpent(Exception):
    """Raised when a budgeted training must end (nnU-Net's loop has a fixed range)."""


#: With --budget, nnU-Net's first epoch is this many iterations, timed; the epochs after it
#: get the length that fits (nnU-Net's 250 iterations would alone overrun a short budget).
PROBE_ITERATIONS = 5


def run_within_budget(trainer, job: dict) -> None:
    """``trainer.run_training()``, with ``--budget`` kept to one step: the time since fit
    started (planning, preprocessing) counts as spent; a short first epoch is timed; the
    epochs and their length are then set to what fits (nnU-Net's poly learning-rate schedule
    stretched to them), and a step that would end past the budget is never started."""
    import logging

    budget = job.get("budget")
    if not budget:
        trainer.run_training()
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    clock = _BudgetClock(budget, job["started"], logging.getLogger("zoo.nnunet"))
    asked_epochs, iterations, val_iterations = job["epochs"], trainer.num_iterations_per_epoch, \
        trainer.num_val_iterations_per_epoch
    trainer.num_epochs = asked_epochs
    trainer.num_iterations_per_epoch = min(iterations, PROBE_ITERATIONS)
    trainer.num_val_iterations_per_epoch = min(val_iterations, 1)
    step, end_epoch = trainer.train_step, trainer.on_epoch_end

    def train_step(batch):
        clock.before_step()
        out = step(batch)
        clock.after_step()
        return out

    def on_epoch_end():
        epoch = trainer.current_epoch
        end_epoch()
        clock.epochs_done += 1
        if epoch == 0:
            epochs, length = clock.plan(asked_epochs, iterations, trainer.num_iterations_per_epoch)
            trainer.num_epochs, trainer.num_iterations_per_epoch = epochs, length
            trainer.num_val_iterations_per_epoch = max(1, round(val_iterations * length / iterations))
            trainer.lr_scheduler.max_steps = epochs  # poly schedule over the planned epochs
        if epoch + 1 >= trainer.num_epochs:
            raise _BudgetSpent

    trainer.train_step, trainer.on_epoch_end = train_step, on_epoch_end
    try:
        trainer.run_training()
    except _BudgetSpent:
        trainer.on_train_end()  # nnU-Net's own wrap-up: final checkpoint, loaders shut down
    job["budget_record"] = clock.record(asked_epochs)


class _BudgetClock:
    """The seconds of a budgeted nnU-Net training: each step timed, the plan made after the
    first epoch, a step refused when it would end past the budget."""

    def __init__(self, budget: float, started: float, log):
        import time

        self.budget, self.started, self.log, self.now = budget, started, log, time.time
        self.step_seconds: list[float] = []
        self.t_step = 0.0
        self.first_step_at: float | None = None  # seconds used when training's first step began
        self.epochs_done = 0
        self.cut_short = False

    def used(self) -> float:
        return self.now() - self.started

    def before_step(self) -> None:
        if self.first_step_at is None:
            self.first_step_at = self.used()
        mean = sum(self.step_seconds) / len(self.step_seconds) if self.step_seconds else 0.0
        if self.step_seconds and self.used() + mean > self.budget:
            self.cut_short = True
            self.log.info("budget %.0f s: stopping inside epoch %d after %d step(s) (another would overrun)",
                          self.budget, self.epochs_done + 1, len(self.step_seconds))
            raise _BudgetSpent
        self.t_step = self.now()

    def after_step(self) -> None:
        self.step_seconds.append(self.now() - self.t_step)

    def plan(self, asked: int, iterations: int, probe: int) -> tuple[int, int]:
        """(epochs, iterations per epoch) that fit in what is left, from the timed first
        epoch (its validation included): nnU-Net's own length when it fits."""
        per_iteration = (self.used() - (self.first_step_at or 0.0)) / max(probe, 1)
        left = max(0.0, self.budget - self.used())
        fit = int(left // max(per_iteration, 1e-9))  # iterations that fit after the first epoch
        epochs_after = min(asked - 1, fit)
        length = min(iterations, fit // epochs_after) if epochs_after else iterations
        self.log.info("budget %.0f s: the first epoch (%d iterations) took %.1f s per iteration, so %d epoch(s) "
                      "in all of %d iteration(s) after it (asked: %d of %d)", self.budget, probe, per_iteration,
                      1 + epochs_after, length, asked, iterations)
        return 1 + epochs_after, max(1, length)

    def record(self, asked: int) -> dict:
        """What the budget did, as zoo's shared loop records it (EpochPlan.record)."""
        steps = self.step_seconds
        return {"epochs": self.epochs_done + int(self.cut_short), "epochs_asked": asked,
                "stopped_inside_epoch": self.cut_short,
                "step_seconds": round(sum(steps) / len(steps), 3) if steps else None}


def main(argv: list[str]) -> int:
    import os

    import torch

    from zoo.lifetime import kill_group_on_term

    kill_group_on_term()  # zoo stopped or died (its death signal): this worker and its own workers end
    fork_free_children()
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    threads = torch.get_num_threads()
    # nnU-Net's planner sets torch's threads to nnUNet_n_proc_DA, which must then be >= 1;
    # training reads it again: 0 = augment in this process.
    os.environ["nnUNet_n_proc_DA"] = str(max(1, job["processes"]))
    job.update(plan_and_preprocess(job["dataset_id"], job["planner"], max(1, job["processes"]), job["pixels"]))
    torch.set_num_threads(threads)
    os.environ["nnUNet_n_proc_DA"] = str(job["processes"])
    train(job)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
