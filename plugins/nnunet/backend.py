"""The ``nnunet`` backend: nnU-Net (nnunetv2) 2d, run as nnU-Net runs itself.

fit
    zoo's training images are written as an nnU-Net raw dataset (:mod:`.raw`) inside the
    run folder (``work/nnunet/nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results``:
    nnU-Net's three environment folders, set for its process only). nnU-Net then extracts
    its fingerprint, plans and preprocesses the ``2d`` configuration and trains it with its
    own trainer on a ``splits_final.json`` whose fold 0 trains on zoo's training images and
    validates on zoo's selection split (``--select best`` / ``--patience``), else on images
    held out of the training images (``holdout``): the split zoo scores is never seen.
    ``--epochs`` sets nnU-Net's epochs and ``iterations_per_epoch`` its iterations per epoch
    (nnU-Net: 1000 x 250); ``--budget`` replans the epochs after the first one as zoo's shared
    loop does (planning and preprocessing count). All of it runs in a child process
    (:mod:`.worker`).
predict
    nnU-Net's own predictor (sliding window, Gaussian weighting, mirroring) on each image,
    set up from zoo's checkpoint; its label map is zoo's (background 0, category i at i + 1).
    ``imgsz`` and ``batch`` are not used: nnU-Net plans its patch and batch size itself,
    and the report shows that plan.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from zoo.backend import Backend, RunContext
from zoo.config import BackendConfig
from zoo.dataset import Dataset, ImageRecord
from zoo.errors import ConfigError, ZooError
from zoo.lifetime import run_group
from zoo.plugins.nnunet.export import export_nnunet, with_onnx_patch_network
from zoo.predictions import SemanticPrediction
from zoo.tasks import Task

CHECKPOINT = "last.pt"
ENV_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


class NnUNetConfig(BackendConfig):
    """Settings of the nnunet backend; everything else is nnU-Net's own plan."""

    iterations_per_epoch: int = Field(250, ge=1)  # nnU-Net's default
    val_iterations_per_epoch: int = Field(50, ge=1)  # nnU-Net's default
    # share of the training images nnU-Net validates on when the run has no selection split
    holdout: float = Field(0.2, gt=0, lt=1)
    planner: str = "ExperimentPlanner"  # nnU-Net's planner class (e.g. nnUNetPlannerResEncM)
    mirroring: bool = True  # nnU-Net's test-time mirroring
    tile_step_size: float = Field(0.5, gt=0, le=1)  # sliding-window overlap, nnU-Net's default
    # nnU-Net's data-augmentation processes (its nnUNet_n_proc_DA; preprocessing uses at least
    # 1). 0 augments in the training process: right on a CPU, where spawned workers only
    # compete for the same cores; on a GPU machine give it the CPU cores (nnU-Net: 8-12).
    processes: int = Field(0, ge=0)


class NnUNet(Backend):
    """nnU-Net 2d: its planning, preprocessing, trainer and predictor."""

    Config: ClassVar[type[NnUNetConfig]] = NnUNetConfig
    stride = 1
    uses_imgsz = False  # nnU-Net plans its own patch size (the report shows it)

    def __init__(self, task: Task, meta: Dataset, config: NnUNetConfig, ctx: RunContext):
        super().__init__(task, meta, config, ctx)
        self.classes = self.meta.semantic_classes()
        if len(self.classes) > 254:
            raise ZooError(f"{len(self.classes) - 1} categories: nnU-Net's PNG label maps hold at most 253")
        self.predictor = None
        self.plan: dict[str, Any] = {}

    @property
    def folder(self) -> Path:
        return self.ctx.work_dir / "nnunet"

    def _identity(self) -> dict[str, Any]:
        return {"architecture": "nnU-Net 2d", "classes": list(self.classes)}

    # -- fit -------------------------------------------------------------------------

    def validation_split(self, train: Dataset, selection) -> tuple[list[ImageRecord], list[ImageRecord]]:
        """nnU-Net's train and validation cases: zoo's training images and its selection
        split when the run has one, else the training images with ``holdout`` of them set
        aside (seeded). nnU-Net always validates, so it always needs some."""
        if selection is not None and len(selection):
            return list(train.images), list(selection.images)
        records = list(train.images)
        if len(records) < 2:
            raise ZooError("nnunet needs at least 2 training images (nnU-Net validates on part of them)")
        n_val = min(len(records) - 1, max(1, round(len(records) * self.config.holdout)))
        chosen = set(random.Random(self.config.seed).sample(range(len(records)), n_val))
        return ([r for k, r in enumerate(records) if k not in chosen],
                [r for k, r in enumerate(records) if k in chosen])

    def fit(self, train: Dataset, selection) -> dict[str, Any]:
        from zoo.plugins.nnunet.raw import DATASET_ID, DATASET_NAME, write_raw_dataset

        import time

        c = self.config
        if c.imgsz != "auto":
            raise ConfigError(f"nnunet: imgsz {c.imgsz} is not used: nnU-Net plans its own patch size from the "
                              "data (the report shows its plan); drop --imgsz (or imgsz:) for nnunet")
        started = time.time()  # --budget covers all of fit: nnU-Net's planning and preprocessing too
        self._forget_earlier_attempt()
        fit_records, check_records = self.validation_split(train, selection)
        raw = write_raw_dataset(self.folder / "nnUNet_raw", self.meta, fit_records + check_records)
        case_of = {rid: case for case, rid in raw.cases.items()}
        checkpoint = self.ctx.checkpoint_dir / CHECKPOINT
        job = {
            "dataset_id": DATASET_ID,
            "dataset_name": DATASET_NAME,
            "planner": c.planner,
            "processes": c.processes,
            "train_cases": [case_of[r.id] for r in fit_records],
            "val_cases": [case_of[r.id] for r in check_records],
            "pixels": sum(r.width * r.height for r in fit_records + check_records),
            "epochs": c.epochs,
            "budget": c.budget,
            "started": started,
            "iterations_per_epoch": c.iterations_per_epoch,
            "val_iterations_per_epoch": c.val_iterations_per_epoch,
            "device": self.ctx.device,
            "seed": c.seed,
            "checkpoint": str(checkpoint),
            "identity": self._identity(),
        }
        self.ctx.log.info("nnU-Net: %d training and %d validation cases in %s",
                          len(fit_records), len(check_records), raw.folder)
        self._run_worker(job)
        self.ctx.ledger.record(checkpoint)
        state = self._load()
        history = state.get("history") or []
        if selection is not None and selection.active:
            # nnU-Net ranks its epochs itself (EMA pseudo Dice on its validation cases) and
            # predicts with its final weights, as nnUNetv2_predict does by default.
            selection.criterion = "nnU-Net's own pseudo Dice on its validation cases (final weights kept)"
            for row in history:
                selection.record(row["epoch"], row["pseudo_dice"])
            if history:
                selection.choose(history[-1]["epoch"])
        out = {
            "final_loss": history[-1]["loss"] if history else None,
            "pseudo_dice": history[-1]["pseudo_dice"] if history else None,
            "epochs": len(history),
            "plan": self.plan,
        }
        return {**out, "budget": state["budget"]} if state.get("budget") else out

    def _forget_earlier_attempt(self) -> None:
        """nnU-Net keeps pickles in its folders (each preprocessed case's properties, its
        checkpoints); one left by an interrupted attempt, or planted in a run folder, must
        never be read. zoo does not continue nnU-Net's training, so a fit starts from none."""
        import shutil

        if self.folder.is_dir():
            shutil.rmtree(self.folder)

    def _run_worker(self, job: dict[str, Any]) -> None:
        from zoo.atomic import write_json

        self.folder.mkdir(parents=True, exist_ok=True)
        job_file = write_json(self.folder / "job.json", job)
        log_file = self.folder / "nnunet.log"
        with open(log_file, "wb") as log:
            # its own process group, dying with zoo (zoo.lifetime): nnU-Net's augmentation
            # workers too, whether zoo is stopped, interrupted or killed
            returncode = run_group([sys.executable, "-m", "zoo.plugins.nnunet.worker", str(job_file)],
                                   cwd=self.folder, env=self._environment(), stdout=log, stderr=subprocess.STDOUT)
        if returncode:
            tail = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:] or ["?"]
            raise ZooError(f"nnU-Net failed (exit {returncode}): {tail[0]}; its log: {log_file}")

    def _environment(self) -> dict[str, str]:
        """zoo's environment plus nnU-Net's folders (in the run folder) and its knobs."""
        env = {**os.environ, **self._folders()}
        env.setdefault("nnUNet_compile", "f")  # torch.compile: minutes of start-up for a short run
        return env

    def _folders(self) -> dict[str, str]:
        return {name: str(self.folder / name) for name in ENV_FOLDERS}

    # -- load / predict ----------------------------------------------------------------

    @classmethod
    def load(cls, task: Task, meta: Dataset, config: NnUNetConfig, ctx: RunContext) -> NnUNet:
        backend = cls(task, meta, config, ctx)
        backend._load()
        return backend

    def _load(self) -> dict[str, Any]:
        """zoo's checkpoint -> nnU-Net's predictor (network built from the recorded plans)."""
        import torch

        from zoo.training import load_checkpoint

        path = self.ctx.checkpoint_dir / CHECKPOINT
        if not path.is_file():
            raise ZooError(f"{path}: missing; train first")
        self.ctx.ledger.verify(path)
        state = load_checkpoint(path)
        extra = state.get("extra", {})
        if extra.get("classes") != list(self.classes):
            raise ZooError(f"{path}: trained for classes {extra.get('classes')}, not {list(self.classes)}")
        plans, dataset_json = json.loads(extra["plans"]), json.loads(extra["dataset_json"])
        with self._nnunet_imports(), self._quiet():
            from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
            from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
            from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
            from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        plans_manager = PlansManager(plans)
        configuration = plans_manager.get_configuration("2d")
        labels = plans_manager.get_label_manager(dataset_json)
        network = nnUNetTrainer.build_network_architecture(
            plans_manager, configuration,
            determine_num_input_channels(plans_manager, configuration, dataset_json),
            labels.num_segmentation_heads, enable_deep_supervision=False,
        )
        network.load_state_dict(state["model"])
        device = torch.device(self.ctx.device)
        with self._quiet():
            predictor = nnUNetPredictor(tile_step_size=self.config.tile_step_size, use_gaussian=True,
                                        use_mirroring=self.config.mirroring,
                                        perform_everything_on_device=device.type == "cuda",
                                        device=device, verbose=False, verbose_preprocessing=False, allow_tqdm=False)
            predictor.manual_initialization(network.to(device), plans_manager, configuration, [state["model"]],
                                            dataset_json, extra.get("trainer", "nnUNetTrainer"),
                                            tuple(extra.get("mirroring_axes") or ()) or None)
        self.predictor = predictor
        self.plan = plan_summary(plans, network)
        self.network = network
        return state

    @contextlib.contextmanager
    def _nnunet_imports(self):
        """nnunetv2 reads its folders at import: point them into the run for the import
        (nothing is read from them in this process), then give zoo its environment back."""
        saved = {k: os.environ.get(k) for k in ENV_FOLDERS}
        os.environ.update(self._folders())
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    @contextlib.contextmanager
    def _quiet(self):
        """nnU-Net prints; zoo's pipeline only logs (the CLI paints the screen)."""
        import io

        with contextlib.redirect_stdout(io.StringIO()) as out:
            yield
        for line in out.getvalue().splitlines():
            if line.strip():
                self.ctx.log.debug("nnU-Net: %s", line)

    def predict(self, images: Sequence[ImageRecord]) -> Iterator[SemanticPrediction]:
        import numpy as np
        import torch

        from zoo.plugins.nnunet.raw import network_input

        if self.predictor is None:
            raise ZooError("nnunet: predict() before fit() or load()")
        for record in images:
            # what the raw dataset holds, as nnU-Net's natural-image reader gives it:
            # (channels, 1, H, W), spacing (999, 1, 1)
            image = np.ascontiguousarray(network_input(record)[0][:, None].astype(np.float32))
            with torch.inference_mode(), self._quiet():
                labels = self.predictor.predict_single_npy_array(image, {"spacing": [999.0, 1.0, 1.0]})
            yield SemanticPrediction(image_id=record.id, label_map=np.asarray(labels)[0].astype(np.uint8))

    def export_onnx(self, out_dir, *, opset, dynamic, sample) -> dict[str, Any]:
        if self.predictor is None or not sample:
            raise ZooError("nnunet: export_onnx() needs a loaded model and a val image to trace on")
        return export_nnunet(self, out_dir, opset=opset, dynamic=dynamic, records=sample)

    @classmethod
    def load_onnx(cls, task: Task, meta: Dataset, config: NnUNetConfig, ctx: RunContext, onnx_file) -> NnUNet:
        return with_onnx_patch_network(cls.load(task, meta, config, ctx), onnx_file)

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        import torch

        return {"nnunetv2": version("nnunetv2"), "torch": torch.__version__}

    def num_parameters(self) -> int | None:
        network = getattr(self, "network", None)
        return None if network is None else sum(p.numel() for p in network.parameters() if p.requires_grad)


def plan_summary(plans: dict[str, Any], network=None) -> dict[str, Any]:
    """What nnU-Net chose for its 2d configuration, in the words of its plans file."""
    c = plans["configurations"]["2d"]
    arch = c.get("architecture", {})
    kwargs = arch.get("arch_kwargs", {})
    return {
        "configuration": "2d",
        "patch_size": list(c.get("patch_size", [])),
        "batch_size": c.get("batch_size"),
        "network": arch.get("network_class_name", "").rsplit(".", 1)[-1],
        "stages": kwargs.get("n_stages"),
        "features_per_stage": kwargs.get("features_per_stage"),
        "kernel_sizes": kwargs.get("kernel_sizes"),
        "strides": kwargs.get("strides"),
        "normalization": c.get("normalization_schemes"),
        "median_image_size": list(c.get("median_image_size_in_voxels", [])),
        "spacing": list(c.get("spacing", [])),
        "plans": plans.get("plans_name"),
    }
