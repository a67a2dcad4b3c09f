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
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def plan_and_preprocess(dataset_id: int, planner: str, processes: int) -> dict:
    """nnU-Net's fingerprint, plans (``nnUNetPlans``) and the preprocessed ``2d`` data."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints,
        plan_experiments,
        preprocess,
    )

    extract_fingerprints([dataset_id], num_processes=processes, check_dataset_integrity=True,
                         clean=True, verbose=False, show_progress_bar=False)
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
        "extra": {
            **job["identity"],
            "plans": json.dumps(plans),
            "dataset_json": json.dumps(dataset_json),
            "trainer": type(trainer).__name__,
            "mirroring_axes": [int(a) for a in (trainer.inference_allowed_mirroring_axes or ())],
        },
    }, job["checkpoint"])


class _BudgetSpent(Exception):
    """Raised after the epoch that ends a budgeted training (nnU-Net's loop has a fixed range)."""


def run_within_budget(trainer, job: dict) -> None:
    """``trainer.run_training()``, with ``--budget`` as zoo's shared loop applies it
    (:class:`zoo.training.EpochPlan`): the first epoch is timed, the epochs are set to what
    fits (the time since fit started counting as spent), nnU-Net's poly learning-rate schedule
    stretches to them, and training ends after the last epoch that fits."""
    import logging
    import time

    from zoo.training import EpochPlan

    budget = job.get("budget")
    if not budget:
        trainer.run_training()
        return
    plan = EpochPlan(job["epochs"], job["iterations_per_epoch"], budget, spent=time.time() - job["started"])
    log = logging.getLogger("zoo.nnunet")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    trainer.num_epochs = 10**6  # nnU-Net's loop range is fixed at its start: the plan ends it
    start_training, end_epoch = trainer.on_train_start, trainer.on_epoch_end
    t0 = [0.0]

    def on_train_start():
        start_training()
        t0[0] = time.time()

    def on_epoch_end():
        epoch = trainer.current_epoch
        end_epoch()
        plan.after_epoch(epoch, time.time() - t0[0], log)
        trainer.lr_scheduler.max_steps = plan.epochs  # poly schedule over the planned epochs
        if epoch + 1 >= plan.epochs:
            raise _BudgetSpent

    trainer.on_train_start, trainer.on_epoch_end = on_train_start, on_epoch_end
    try:
        trainer.run_training()
    except _BudgetSpent:
        trainer.num_epochs = plan.epochs
        trainer.on_train_end()  # nnU-Net's own wrap-up: final checkpoint, loaders shut down


def main(argv: list[str]) -> int:
    import os

    import torch

    from zoo.lifetime import kill_group_on_term

    kill_group_on_term()  # zoo stopped or died (its death signal): this worker and its own workers end
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    threads = torch.get_num_threads()
    # nnU-Net's planner sets torch's threads to nnUNet_n_proc_DA, which must then be >= 1;
    # training reads it again: 0 = augment in this process.
    os.environ["nnUNet_n_proc_DA"] = str(max(1, job["processes"]))
    job.update(plan_and_preprocess(job["dataset_id"], job["planner"], max(1, job["processes"])))
    torch.set_num_threads(threads)
    os.environ["nnUNet_n_proc_DA"] = str(job["processes"])
    train(job)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
