"""detectron2's model-zoo detectors as zoo backends: a thin translator.

fit:     canonical split -> dataset dicts registered in memory (:mod:`.data`) -> the
         model-zoo config with zoo's settings mapped in (:mod:`.settings`) -> detectron2's
         own ``SimpleTrainer`` (``AMPTrainer`` on CUDA with amp), its data loader, optimizer,
         LR schedule and gradient clipping, plus zoo's hooks: progress bar, checkpoints,
         a log line per epoch.
predict: records -> detectron2's test-time resize -> ``Instances`` -> canonical predictions
         (:mod:`.translate`), scored by zoo's evaluator like every other backend.

Model selection is zoo's protocol (:mod:`zoo.selection`): under ``--select best`` /
``--patience`` a hook scores the selection split with zoo's evaluator after each epoch,
keeps that epoch's checkpoint as ``best.pt`` when it is the best, and stops early.

Checkpoints are zoo's own ``checkpoint/last.pt`` (model, optimizer and scheduler state
dicts, the iteration, the resolved detectron2 config as YAML text), written every epoch and
read back with ``torch.load(weights_only=True)``: detectron2's ``Checkpointer`` pickles, and
zoo unpickles nothing it did not write. ``--resume`` continues from the last epoch saved.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from zoo.backend import Backend, RunContext, Unsupported
from zoo.config import dump_config
from zoo.dataset import Dataset, ImageRecord
from zoo.errors import ZooError
from zoo.plugins.detectron2.export import OnnxD2Model, export_d2
from zoo.plugins.detectron2.settings import DEFAULT_CONFIGS, D2Config, build_cfg
from zoo.predictions import InstancePredictions
from zoo.selection import Selection
from zoo.tasks import Task
from zoo.training import LAST, load_checkpoint, predict_batches, restore, save_checkpoint, seed_everything


#: What detectron2 and torch print on every run that says nothing about the user's run:
#: deprecations inside detectron2 0.7 (pkg_resources, torch.jit.script, meshgrid's indexing).
_NOISE = r"(?s).*(pkg_resources is deprecated|torch\.jit\.script. is deprecated|torch\.meshgrid: in an upcoming)"


#: loggers -> the level they are raised to: torch.fx's "is_fx_tracing" line, and the trainer's
#: "Exception during training" traceback (the exception itself still reaches zoo, which
#: turns a diverged loss into one line and shows anything else with its traceback)
_QUIET_LOGGERS = {"torch.fx._symbolic_trace": logging.ERROR, "detectron2.engine.train_loop": logging.CRITICAL}


@contextlib.contextmanager
def quiet_framework():
    """Silence :data:`_NOISE` and :data:`_QUIET_LOGGERS`; everything else shows."""
    loggers = {logging.getLogger(name): level for name, level in _QUIET_LOGGERS.items()}
    before = {log: log.level for log in loggers}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NOISE)
        for log, level in loggers.items():
            log.setLevel(level)
        try:
            yield
        finally:
            for log, level in before.items():
                log.setLevel(level)


class D2Backend(Backend):
    """The detectron2 backends, one class: the spec's ``model`` option picks the model-zoo
    config (``faster``, ``mask``, ``keypoint``, ``retinanet``, ``cascade``)."""

    Config = D2Config

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.option("model")

    def __init__(self, task: Task, meta: Dataset, config: D2Config, ctx: RunContext):
        super().__init__(task, meta, config, ctx)
        self.model = None
        self.cfg = None
        self.num_keypoints = len(self.meta.keypoint_names) if self.kind == "keypoint" else 0
        if self.kind == "keypoint" and not self.num_keypoints:
            raise ZooError(f"{self.name} needs keypoint names in the dataset (labelme points or zoo.yaml)")

    @property
    def config_name(self) -> str:
        return self.config.config or DEFAULT_CONFIGS[self.kind]

    def _cfg(self, max_iter: int = 1):
        from_weights = self.config.pretrained or self.config.weights is not None
        config = self.config
        if self.num_keypoints and config.hflip and self._flip_idx() is None:
            # flipping would swap the meaning of asymmetric landmarks
            self.ctx.log.info("%s: no left/right keypoint pairs known; training without flips", self.name)
            config = config.model_copy(update={"hflip": False})
        return build_cfg(
            self.kind, self.task.name, self.meta, config, self.ctx.device,
            from_weights=from_weights, max_iter=max_iter,
        )

    # -- training ------------------------------------------------------------------------------

    def fit(self, train: Dataset, selection: Selection) -> dict[str, Any]:
        with quiet_framework():
            return self._fit(train, selection)

    def _fit(self, train: Dataset, selection: Selection) -> dict[str, Any]:
        from detectron2.data import get_detection_dataset_dicts

        from zoo.plugins.detectron2.data import registered

        seed_everything(self.config.seed)
        masks = self.task.draws_masks
        flip_idx = self._flip_idx()
        with registered(self.kind, train.images, self.meta, masks=masks,
                        num_keypoints=self.num_keypoints, flip_idx=flip_idx) as name:
            probe = self._cfg()
            dicts = get_detection_dataset_dicts(
                [name],
                filter_empty=probe.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
                min_keypoints=probe.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if self.num_keypoints else 0,
            )
            per_epoch = math.ceil(len(dicts) / self.config.batch)
            cfg = self._cfg(max_iter=per_epoch * self.config.epochs)
            cfg.defrost()
            cfg.DATASETS.TRAIN = (name,)
            cfg.freeze()
            return self._train(cfg, dicts, per_epoch, train.images, selection)

    def _flip_idx(self) -> list[int] | None:
        if not self.num_keypoints or not self.config.hflip:
            return None
        from zoo.data.keypoints import flip_permutation

        return flip_permutation(self.meta)

    def _train(self, cfg, dicts, per_epoch: int, records, selection: Selection) -> dict[str, Any]:
        from detectron2.data import build_detection_train_loader
        from detectron2.data.samplers import TrainingSampler
        from detectron2.engine import AMPTrainer, SimpleTrainer, hooks
        from detectron2.modeling import build_model
        from detectron2.solver import build_lr_scheduler, build_optimizer

        from zoo.plugins.detectron2.data import RecordMapper
        from zoo.plugins.detectron2.hooks import BudgetStop, EpochCheckpoints, EpochSelection, ProgressBar, StopEarly
        from zoo.training.budget import EpochPlan

        model = build_model(cfg)
        self._start_weights(model)
        optimizer = clip_all_gradients(build_optimizer(cfg, model), self.config.grad_clip)
        scheduler = build_lr_scheduler(cfg, optimizer)
        loader = build_detection_train_loader(
            cfg, dataset=dicts, mapper=RecordMapper(cfg, True, records),
            sampler=TrainingSampler(len(dicts), seed=cfg.SEED),  # seeded: the same order every run
        )
        trainer_cls = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        trainer = trainer_cls(model, loader, optimizer)
        start = self._resume(model, optimizer, scheduler)
        checkpoints = EpochCheckpoints(
            self.ctx.checkpoint_dir / LAST, per_epoch, scheduler, self._extra(cfg), self.ctx, self.name,
        )
        self.model, self.cfg = model, cfg  # what predict() runs while the selection split is scored
        chooser = EpochSelection(selection, selection.scorer(self.predict), per_epoch,
                                 self.ctx.checkpoint_dir / LAST, self.ctx)
        budget = BudgetStop(EpochPlan(self.config.epochs, per_epoch, self.config.budget), per_epoch, self.ctx.log)
        trainer.register_hooks([
            budget,  # first: it shortens max_iter for the hooks after it
            hooks.IterationTimer(),
            hooks.LRScheduler(optimizer, scheduler),
            ProgressBar(f"{self.name} train"),
            checkpoints,
            chooser,  # after the checkpoint: best.pt is a copy of that epoch's last.pt
        ])
        t0 = time.perf_counter()
        if start < cfg.SOLVER.MAX_ITER:
            try:
                trainer.train(start, cfg.SOLVER.MAX_ITER)
            except StopEarly:
                if chooser.stopped_after is not None:
                    self.ctx.log.info("%s: early stopping after epoch %d", self.name, chooser.stopped_after + 1)
            except FloatingPointError as e:
                raise ZooError(
                    f"{self.name}: training diverged ({str(e).splitlines()[0]}); "
                    f"lower lr (now {self.config.lr}) or raise warmup_iters"
                ) from None
        best = selection.best_epoch() if selection.keeps_best else None
        last = chooser.epoch if chooser.epoch >= 0 else self.config.epochs - 1
        selection.choose(best if best is not None else last, chooser.stopped_after)
        if best is not None and best != last:
            restore(model, self.ctx.checkpoint_dir, ledger=self.ctx.ledger)  # predict with what load() gives
        self.model = model.eval()
        out = {
            "loss": checkpoints.last_loss,
            "epochs": budget.plan.epochs if budget.stopped else self.config.epochs,
            "iterations": trainer.max_iter if budget.stopped else cfg.SOLVER.MAX_ITER,
            "train_seconds": round(time.perf_counter() - t0, 2),
        }
        return {**out, "budget": budget.plan.record()} if self.config.budget else out

    def _start_weights(self, model) -> None:
        from zoo.plugins.detectron2.weights import cached_model_zoo_weights, load_into, read_weights

        if self.config.weights is not None:
            weights = read_weights(self.config.weights, trust=self.ctx.trust_weights)
            load_into(model, weights, str(self.config.weights))
        elif self.config.pretrained:
            path = cached_model_zoo_weights(self.config_name)
            load_into(model, read_weights(path), str(path))

    def _resume(self, model, optimizer, scheduler) -> int:
        """The iteration to start from: after the last saved epoch with ``--resume``, else 0."""
        path = self.ctx.checkpoint_dir / LAST
        if not (self.ctx.resume and path.is_file()):
            return 0
        state = load_checkpoint(self.ctx.ledger.verify(path), map_location=self.ctx.device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        self.ctx.log.info("%s: resuming from %s at iteration %d", self.name, path, state["iteration"])
        return int(state["iteration"])

    def _extra(self, cfg) -> dict[str, Any]:
        return {
            "backend": self.name,
            "categories": list(self.meta.categories),
            "keypoint_names": list(self.meta.keypoint_names),
            "config": dump_config(self.config),
            "detectron2_config": cfg.dump(),  # YAML text: load() rebuilds exactly this model
        }

    # -- inference -----------------------------------------------------------------------------

    @classmethod
    def load(cls, task: Task, meta: Dataset, config: D2Config, ctx: RunContext) -> D2Backend:
        with quiet_framework():
            return cls._load(task, meta, config, ctx)

    @classmethod
    def _load(cls, task: Task, meta: Dataset, config: D2Config, ctx: RunContext) -> D2Backend:
        from detectron2.config import CfgNode, get_cfg
        from detectron2.modeling import build_model

        self = cls(task, meta, config, ctx)
        path = ctx.checkpoint_dir / LAST
        saved = load_checkpoint(ctx.ledger.verify(path)).get("extra", {}).get("detectron2_config")
        if not saved:
            raise ZooError(f"{path}: not a checkpoint of a detectron2 backend (no detectron2_config)")
        cfg = get_cfg()
        cfg.merge_from_other_cfg(CfgNode.load_cfg(saved))
        cfg.MODEL.DEVICE = ctx.device
        cfg.freeze()
        model = build_model(cfg)
        restore(model, ctx.checkpoint_dir, {"categories": list(self.meta.categories)}, ledger=ctx.ledger)
        self.model, self.cfg = model.eval(), cfg
        return self

    def predict(self, images: Sequence[ImageRecord]) -> Iterator[InstancePredictions]:
        import torch

        from zoo.plugins.detectron2.data import RecordMapper
        from zoo.plugins.detectron2.translate import instances_to_prediction

        if self.model is None:
            raise ZooError(f"{self.name}: no model; fit() or load() first ({self.ctx.checkpoint_dir / LAST})")
        mapper = RecordMapper(self.cfg, False, images)
        model = self.model.eval()
        for chunk in predict_batches(images, self.config.batch, f"{self.name} predict"):
            with torch.no_grad(), quiet_framework():
                outs = model([mapper.inference_input(r) for r in chunk])
            for record, out in zip(chunk, outs):
                yield instances_to_prediction(record.id, out["instances"], record.width, record.height)

    def export_onnx(self, out_dir, *, opset, dynamic, sample) -> dict[str, Any]:
        from zoo.plugins.detectron2.data import RecordMapper

        if self.kind == "keypoint":
            # tried with torch 2.14 / detectron2 0.7.2, opset 17: the exporter stops inside that loop
            raise Unsupported("detectron2 decodes its keypoint heatmaps in a scripted loop over the boxes "
                              "(heatmaps_to_keypoints) that torch's ONNX exporter cannot carry: aten::index, "
                              "advanced indexing on a tensor of unknown rank")
        if not sample:
            raise ZooError(f"{self.name}: no val image to trace the export on")
        mapper = RecordMapper(self.cfg, False, sample)
        with quiet_framework():
            return export_d2(self, out_dir, opset=opset, inputs=[mapper.inference_input(r) for r in sample])

    @classmethod
    def load_onnx(cls, task: Task, meta: Dataset, config: D2Config, ctx: RunContext, onnx_file) -> D2Backend:
        self = cls(task, meta, config, ctx)
        self.model, self.cfg = OnnxD2Model(onnx_file, ctx.device), self._cfg()
        return self

    def num_parameters(self) -> int | None:
        if self.model is None:
            return None
        return sum(p.numel() for p in self.model.parameters())

    def versions(self) -> dict[str, str]:
        import detectron2
        import torch
        import torchvision

        return {"detectron2": detectron2.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__}


def clip_all_gradients(optimizer, max_norm: float):
    """``optimizer`` whose ``step`` first clips the L2 norm of all gradients together to
    ``max_norm`` (0: unchanged). The class swap is how detectron2 adds its own clipping; its
    yacs options only clip each parameter on its own. Under AMP the scaler unscales the
    gradients before ``step``, so the norm is the true one."""
    import itertools

    import torch

    if max_norm <= 0:
        return optimizer
    base = type(optimizer)

    class ClippedOptimizer(base):
        def step(self, closure=None):
            params = itertools.chain.from_iterable(g["params"] for g in self.param_groups)
            torch.nn.utils.clip_grad_norm_(list(params), max_norm)
            return super().step(closure)

    ClippedOptimizer.__name__ = f"{base.__name__}WithFullModelClipping"
    optimizer.__class__ = ClippedOptimizer
    return optimizer
