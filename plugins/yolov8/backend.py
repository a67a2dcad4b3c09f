"""YOLOv8 through ultralytics: a thin translator.

fit:     canonical train / selection -> ultralytics' folder layout in ``work/data`` (see
         :mod:`.convert`) -> ``YOLO(...).train(project=work/)`` -> ``checkpoint/model.pt``
predict: images -> ``YOLO.predict`` -> canonical predictions (see :mod:`.translate`)

Checkpoints and pickles: an ultralytics ``.pt`` is a pickle of the whole model, and
unpickling a file runs whatever code it names. So zoo's ``checkpoint/model.pt`` holds
tensors only (the state dict, read back with ``weights_only``) plus plain values naming the
architecture: a packaged ultralytics model YAML (``yolov8n.yaml``, ...), the class count,
the keypoint shape and the output names; :meth:`YoloV8.load` rebuilds the network from those
and loads the tensors. Ultralytics' own ``work/train/weights/last.pt`` (which ``--resume``
continues) is a pickle: its sha256 is recorded in the run's manifest each time ultralytics
writes it, but a manifest in the same folder proves nothing against whoever could swap the
file, so ``--resume`` unpickles it only with ``--trust-weights`` (and only when it still
matches); without it the resume is refused in one line. A user's ``--weights`` file or
a pretrained ``.pt`` (fetched into ``$ZOO_HOME/weights`` by zoo.training.fetch) is unpickled only with
``--trust-weights``, and is not even fetched without it.

Tasks: detect, instance-seg, keypoint, classify, and semantic-seg derived from the
instance-seg model (its confident masks painted into a label map; see :mod:`.translate`).

Everything ultralytics writes (converted data, its run folder, its settings and font) stays
under the run folder; it never goes online (see :mod:`.offline`).

Scoring is zoo's, and so is model selection (:mod:`zoo.selection`): ultralytics' ``val``
data is zoo's selection split, never the scored one, so its ``best.pt`` and early stopping
(``--patience``) see only that. Under ``--select last`` nothing is validated per epoch and
``last.pt`` is kept; ultralytics still insists on a validation pass after the last epoch,
which then runs on the training images. Its numbers are returned from :meth:`fit` for the
log only, labelled as ultralytics'.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from zoo.backend import Backend, RunContext
from zoo.config import BackendConfig
from zoo.dataset import Dataset, ImageRecord
from zoo.errors import ConfigError, ZooError
from zoo.plugins.yolov8.convert import FRAMEWORK_TASK, MODEL_SUFFIX, class_folder_names, write_dataset
from zoo.predictions import Prediction
from zoo.selection import Selection
from zoo.tasks import Task

CHECKPOINT = "model.pt"
#: The packaged architecture files a checkpoint may name (never a path: only a file name
#: that ultralytics resolves inside its own package).
_ARCH_NAME = re.compile(r"^yolo(v\d+|\d+)[nsmlx](-seg|-pose|-cls)?\.yaml$")


class YoloV8Config(BackendConfig):
    """Settings of the yolov8 backend (``--set key=value``); ultralytics' names and meaning."""

    model: Literal["n", "s", "m", "l", "x"] = "n"  # model scale: yolov8{model}[-seg|-pose|-cls]
    optimizer: str = "auto"  # SGD, Adam, AdamW, ...; "auto" lets ultralytics choose (and ignore lr0)
    lr0: float = 0.01
    # ultralytics accumulates gradients up to this nominal batch before each optimiser step:
    # at its default 64, batch 16 steps once every 4 batches, which on a small dataset leaves
    # a few dozen steps in a whole training. Equal to batch: one step per batch.
    nbs: int = 64
    lrf: float = 0.01  # final learning rate, as a fraction of lr0
    cos_lr: bool = False
    warmup_epochs: float = 3.0
    mosaic: float = 1.0
    close_mosaic: int = 10  # last epochs without mosaic
    fliplr: float = 0.5
    flipud: float = 0.0
    degrees: float = 0.0
    scale: float = 0.5
    plots: bool = False  # ultralytics' own plots in work/
    amp: bool = False  # mixed precision on CUDA; true makes ultralytics try to download an AMP check model
    cache: bool = False  # keep decoded training images in RAM
    # Prediction (what zoo's evaluator scores): keep low-score boxes for AP, as COCO does.
    conf: float = 0.001
    iou: float = 0.7
    max_det: int = 100
    #: semantic-seg only: detections scoring at least this paint the label map.
    semantic_conf: float = 0.25
    #: Any other ``model.train`` argument of ultralytics, passed through as is.
    train_args: dict[str, Any] = Field(default_factory=dict)


class YoloV8(Backend):
    Config = YoloV8Config
    config: YoloV8Config

    def __init__(self, task: Task, meta: Dataset, config: BackendConfig, ctx: RunContext):
        super().__init__(task, meta, config, ctx)
        if task.name not in FRAMEWORK_TASK:
            raise ZooError(f"yolov8 does not do {task.name}; it does {', '.join(FRAMEWORK_TASK)}")
        from zoo.training.distributed import world

        if world().distributed:
            raise ZooError("yolov8 trains on several GPUs itself (ultralytics' DDP): run zoo run --device 0,1 "
                           "in one process, not under torchrun")
        self._model = None
        self._device = _framework_device(ctx.device)

    # -- environment -----------------------------------------------------------------------

    def _prepare(self):
        from zoo.plugins.yolov8 import offline

        offline.prepare(self.ctx.work_dir / "ultralytics-config")
        from ultralytics import YOLO

        return YOLO

    def _start_weights(self) -> str:
        """What training starts from: the architecture YAML (from scratch), or weights."""
        suffix = MODEL_SUFFIX[self.task.name]
        if self.config.weights is not None:
            w = Path(self.config.weights).expanduser()
            if not w.is_file():
                raise ConfigError(f"weights: {w} does not exist")
            return self._trusted(w.resolve())
        name = f"yolov8{self.config.model}{suffix}"
        if self.config.pretrained:
            return self._trusted(self._fetch_asset(f"{name}.pt"))
        return f"{name}.yaml"  # built from ultralytics' packaged architecture, random weights

    def _fetch_asset(self, file: str) -> Path:
        """Ultralytics' published ``file`` (its GitHub release asset), fetched once into
        ``$ZOO_HOME/weights`` (zoo.training.fetch). Refused before any download without
        ``--trust-weights``: the asset is a pickle."""
        if not self.ctx.trust_weights:
            raise ConfigError(
                f"--pretrained for yolov8 needs --trust-weights: ultralytics ships its weights "
                f"({file}) as pickles, and unpickling can run any code in them"
            )
        from zoo.training.fetch import fetch

        return fetch(_asset_url(file), _weights_home() / file, what=f"pretrained {file}")

    def _trusted(self, path: Path) -> str:
        """An ultralytics ``.pt`` is a pickle: it is unpickled only when the user trusts it."""
        if not self.ctx.trust_weights:
            raise ConfigError(
                f"{path}: an ultralytics .pt file is a pickle, and unpickling can run any code in it; "
                "zoo loads it only with --trust-weights (pass it if you trust this file)"
            )
        return str(path)

    def _refuse_untrusted_resume(self, last: Path) -> None:
        """ultralytics resumes only from its own ``last.pt``, a pickle of the whole trainer
        state. Whoever could swap that file in a run folder could also write its sha256 into
        the folder's manifest, so the ledger proves nothing against them: without
        ``--trust-weights`` zoo never unpickles it (see docs/security.md)."""
        if not self.ctx.trust_weights:
            raise ConfigError(
                f"{last}: yolov8 --resume continues ultralytics' last.pt, a pickle that can run any code "
                "when read (the sha256 in the run's manifest proves nothing: it sits in the same folder); "
                "pass --trust-weights if this run folder never left your hands, or start a new run")

    # -- Backend -----------------------------------------------------------------------------

    def fit(self, train: Dataset, selection: Selection) -> dict[str, Any]:
        work = self.ctx.work_dir.resolve()
        if self.ctx.resume and (work / "train" / "weights" / "last.pt").is_file():
            self._refuse_untrusted_resume(work / "train" / "weights" / "last.pt")
        YOLO = self._prepare()
        log = self.ctx.log
        t0 = time.perf_counter()
        # ultralytics needs validation data: the selection split, else (nothing scored) the
        # training images for the one pass it makes after the last epoch; never the scored split
        data = write_dataset(self.task.name, train, self._closing_validation(train, selection), work / "data")
        log.info("yolov8: wrote ultralytics data in %.1f s", time.perf_counter() - t0)
        args = self.train_args(data, selection)
        selection.criterion = ULTRALYTICS_CRITERION
        weights = work / "train" / "weights"
        ledger = self.ctx.ledger
        resumed = self.ctx.resume and (weights / "last.pt").is_file()
        if resumed and not ledger.recorded(weights / "last.pt"):
            # a pickle zoo cannot vouch for (no sha256 of it in the manifest): never unpickled
            log.warning("yolov8: %s has no recorded sha256; training starts again", weights / "last.pt")
            resumed = False
        if not resumed:
            _forget_stale_weights(weights)
        if resumed:  # an interrupted run: ultralytics continues from its last epoch
            last = ledger.verify(weights / "last.pt")
            log.info("yolov8: resuming from %s", last)
            model = YOLO(str(last), task=FRAMEWORK_TASK[self.task.name])
            args = {"resume": str(last)}
        else:
            model = YOLO(self._start_weights(), task=FRAMEWORK_TASK[self.task.name])
            # What zoo asked of ultralytics, for the record (and for bench/bench_yolov8.py).
            (work / "train_args.json").write_text(json.dumps(args, indent=2, default=str), encoding="utf-8")
        # every time ultralytics (re)writes its pickles, zoo records their sha256
        record = _recorder(ledger, weights)
        model.add_callback("on_model_save", record)
        model.add_callback("on_train_end", record)
        model.add_callback("on_fit_epoch_end", _epoch_logger(log, self.config.epochs))
        model.add_callback("on_model_save", _selection_recorder(selection))
        budget = _BudgetStop(self.config.budget, t0, self.config.epochs, log)
        model.add_callback("on_train_start", budget.on_train_start)
        model.add_callback("on_train_batch_end", budget.on_train_batch_end)
        model.add_callback("on_train_epoch_end", budget.on_train_epoch_end)
        if self._device == "cpu":
            model.add_callback("on_train_start", _every_core_recorded(log))
        bar = _EpochBar(self.config.epochs)
        model.add_callback("on_train_start", bar.start)
        model.add_callback("on_fit_epoch_end", bar.advance)
        model.add_callback("on_train_end", bar.stop)
        t_train, cpu_train = time.perf_counter(), time.process_time()
        try:
            model.train(**args)
        except SyntaxError as e:  # ultralytics' way of rejecting an unknown argument
            raise ConfigError(f"yolov8 train_args: {str(e).strip().splitlines()[0]}") from None
        except AssertionError as e:
            # interrupted after the last epoch but before zoo copied the checkpoint
            if not (resumed and "nothing to resume" in str(e)):
                raise
            log.info("yolov8: training had already finished; keeping its weights")
        finally:
            bar.stop()
        t_train, cpu_train = time.perf_counter() - t_train, time.process_time() - cpu_train
        log.info("yolov8: ultralytics trained in %.1f s", t_train)
        kept = weights / "best.pt" if selection.keeps_best and (weights / "best.pt").is_file() else weights / "last.pt"
        _record_choice(selection, model, self.config.epochs)
        self._write_checkpoint(ledger.verify(kept))
        self._model = None
        self._loaded()  # predict with what load() gives
        trainer = getattr(model, "trainer", None)
        own = {k: round(float(v), 5) for k, v in (getattr(trainer, "metrics", None) or {}).items() if _is_number(v)}
        out: dict[str, Any] = {"ultralytics_train_s": round(t_train, 3), "ultralytics_train_cpu_s": round(cpu_train, 3)}
        if own:
            out["ultralytics_val" if selection.active else "ultralytics_val_on_train_images"] = own
        if self.config.budget and trainer is not None:  # ultralytics re-plans its epochs; zoo's rule stops inside one
            out["budget"] = {**budget.plan.record(), "epochs": int(getattr(trainer, "epoch", 0)) + 1}
        return out

    def _closing_validation(self, train: Dataset, selection: Selection) -> Dataset:
        """What ultralytics validates on: the selection split when the protocol scores; else
        training images for the one pass ultralytics makes after its last epoch (it needs
        some; zoo scores its own split), with ``--budget`` only one batch of them: that pass
        runs twice after training (last and best weights) and on the whole training set it
        alone took a one-minute budget past two."""
        if selection.active:
            return selection.data
        if not self.config.budget:
            return train
        return train.subset([r.id for r in train.images[:max(1, self.config.batch)]])

    def train_args(self, data: Path, selection: Selection | None = None) -> dict[str, Any]:
        """The ``model.train`` arguments for this config and selection protocol (also used by
        the overhead benchmark; no selection: nothing scored during training)."""
        c = self.config
        scoring = selection is not None and selection.active
        patience = selection.protocol.patience if scoring else None
        args = dict(
            data=str(data),
            epochs=c.epochs,
            imgsz=c.imgsz,
            batch=c.batch,
            device=self._device,
            workers=c.workers,
            seed=c.seed,
            deterministic=True,
            optimizer=c.optimizer,
            lr0=c.lr0,
            nbs=c.nbs,
            lrf=c.lrf,
            cos_lr=c.cos_lr,
            warmup_epochs=c.warmup_epochs,
            patience=patience or 0,  # 0: ultralytics never stops early
            # ultralytics' own budget (hours): it times the first epoch, sets the epochs to fit
            # and stretches its schedule to them, then stops on time -- zoo's rule for --budget
            time=c.budget / 3600 if c.budget else None,
            mosaic=c.mosaic,
            close_mosaic=c.close_mosaic,
            fliplr=c.fliplr,
            flipud=c.flipud,
            degrees=c.degrees,
            scale=c.scale,
            val=scoring,  # per-epoch validation (on the selection split) only when the protocol scores
            plots=c.plots,
            amp=c.amp and self._device != "cpu",
            cache=c.cache,
            pretrained=self.config.weights is not None or self.config.pretrained,
            # an absolute project inside the run: ultralytics' default is ./runs (or site-packages)
            project=str(self.ctx.work_dir.resolve()),
            name="train",
            exist_ok=True,
            verbose=False,
        )
        owned = sorted(set(c.train_args) & {"val", "patience"})
        if owned:
            raise ConfigError(
                f"yolov8 train_args: {', '.join(owned)} belong to zoo's model-selection protocol "
                "(--select, --select-frac, --patience), the same for every backend"
            )
        args.update(c.train_args)
        return args

    def predict(self, images: Sequence[ImageRecord]) -> Iterator[Prediction]:
        from zoo.plugins.yolov8 import translate

        model = self._loaded()
        c = self.config
        task = self.task.name
        class_of_output = self._class_of_output(model) if task == "classify" else None
        chunk = max(1, c.batch)
        for start in range(0, len(images), chunk):
            batch = images[start : start + chunk]
            # ultralytics takes numpy images as BGR (OpenCV's order)
            arrays = [r.load_rgb()[..., ::-1].copy() for r in batch]
            results = model.predict(
                arrays,
                imgsz=c.imgsz,
                conf=c.conf,
                iou=c.iou,
                max_det=c.max_det,
                device=self._device.split(",")[0],  # --device 0,1 trains on both (DDP), predicts on one
                retina_masks=True,  # masks at the original resolution
                verbose=False,
                save=False,
                project=str(self.ctx.work_dir.resolve()),
                name="predict",
            )
            for rec, res in zip(batch, results):
                if task == "classify":
                    yield translate.to_class(res, rec.id, class_of_output, len(self.meta.classes))
                elif task == "semantic-seg":
                    yield translate.to_label_map(res, rec.id, c.semantic_conf)
                else:
                    yield translate.to_instances(
                        res,
                        rec.id,
                        with_masks=task == "instance-seg",
                        with_keypoints=task == "keypoint",
                    )

    @classmethod
    def load(cls, task: Task, meta: Dataset, config: BackendConfig, ctx: RunContext) -> YoloV8:
        self = cls(task, meta, config, ctx)
        self._loaded()
        return self

    def export_onnx(self, out_dir, *, opset, dynamic, sample) -> dict[str, Any]:
        from zoo.plugins.yolov8.export import export_yolo

        return export_yolo(self, out_dir, opset=opset, dynamic=dynamic, sample=sample)

    @classmethod
    def load_onnx(cls, task: Task, meta: Dataset, config: BackendConfig, ctx: RunContext, onnx_file) -> YoloV8:
        """Predicts through ultralytics' own ONNX path (its AutoBackend runs onnxruntime)."""
        self = cls(task, meta, config, ctx)
        YOLO = self._prepare()
        self._model = YOLO(str(onnx_file), task=FRAMEWORK_TASK[task.name])
        return self

    def versions(self) -> dict[str, str]:
        import ultralytics

        return {"ultralytics": ultralytics.__version__}

    def num_parameters(self) -> int | None:
        model = self._loaded()
        return int(sum(p.numel() for p in model.model.parameters()))

    # -- helpers -----------------------------------------------------------------------------

    def _write_checkpoint(self, best: Path) -> Path:
        """ultralytics' best weights (a pickle this run wrote, checked) -> zoo's tensors-only
        ``checkpoint/model.pt``, naming the architecture it rebuilds from."""
        from ultralytics.nn.tasks import load_checkpoint as load_ultralytics

        from zoo.training import save_checkpoint

        net, _ = load_ultralytics(str(best))
        yaml = getattr(net, "yaml", None) or {}
        extra = {
            "architecture": Path(str(yaml.get("yaml_file", ""))).name,
            "nc": int(yaml.get("nc", len(net.names))),
            "kpt_shape": [int(v) for v in yaml["kpt_shape"]] if yaml.get("kpt_shape") else None,
            "names": {int(k): str(v) for k, v in dict(net.names).items()},
            "task": FRAMEWORK_TASK[self.task.name],
        }
        return save_checkpoint({"model": net.float().state_dict(), "extra": extra},
                               self.ctx.checkpoint_dir / CHECKPOINT, ledger=self.ctx.ledger)

    def _loaded(self):
        if self._model is None:
            self._model = self._rebuild(self.ctx.checkpoint_dir / CHECKPOINT)
        return self._model

    def _rebuild(self, ckpt: Path):
        """A YOLO model from zoo's checkpoint: tensors into the architecture it names; no
        unpickling, and no model definition taken from the file beyond a packaged name."""
        from zoo.training import load_checkpoint

        if not ckpt.is_file():
            raise ZooError(f"{ckpt}: no yolov8 checkpoint (was the run trained?)")
        state = load_checkpoint(self.ctx.ledger.verify(ckpt))
        extra = state.get("extra") if isinstance(state, dict) else None
        arch = (extra or {}).get("architecture")
        if not isinstance(arch, str) or not _ARCH_NAME.match(arch) or extra.get("task") != FRAMEWORK_TASK[self.task.name]:
            raise ZooError(f"{ckpt}: not a zoo yolov8 {self.task.name} checkpoint (no known architecture "
                           "recorded); train the run again")
        YOLO = self._prepare()
        model = YOLO(arch, task=extra["task"])  # the wrapper; its network is replaced below
        kwargs: dict[str, Any] = {"nc": int(extra["nc"]), "verbose": False}
        if extra.get("kpt_shape"):
            kwargs["data_kpt_shape"] = tuple(int(v) for v in extra["kpt_shape"])
        net = model._smart_load("model")(arch, **kwargs)
        try:
            net.load_state_dict(state["model"])
        except (RuntimeError, KeyError, TypeError) as e:
            raise ZooError(f"{ckpt}: its tensors do not fit {arch} ({str(e).splitlines()[0]})") from None
        net.names = {int(k): str(v) for k, v in extra["names"].items()}
        net.args, net.task = model.model.args, model.task
        model.model = net.eval()
        if self._device == "cpu":
            model.add_callback("on_predict_start", _every_core)
        return model

    def _class_of_output(self, model) -> list[int]:
        """zoo's class index for each output of a classify model (ultralytics names its
        outputs after the class folders, sorted)."""
        folder_to_class = {n: i for i, n in enumerate(class_folder_names(self.meta.classes))}
        names = model.names
        try:
            return [folder_to_class[names[i]] for i in range(len(names))]
        except KeyError as e:
            raise ZooError(
                f"yolov8 checkpoint predicts class folder {e.args[0]!r}, which is not one of this "
                f"dataset's classes ({', '.join(self.meta.classes)})"
            ) from None


ULTRALYTICS_CRITERION = "ultralytics' own validation fitness (its mAP mix, or top-1 for classify)"


def _selection_recorder(selection: Selection):
    """An ultralytics callback: each epoch's fitness on the selection split, once per epoch
    (``on_model_save`` follows that epoch's validation; the final re-validation of best.pt
    does not trigger it)."""

    def on_model_save(trainer) -> None:
        if selection.active and trainer.fitness is not None:
            selection.record(int(trainer.epoch), float(trainer.fitness))

    return on_model_save


def _record_choice(selection: Selection, model, epochs: int) -> None:
    """Which epoch's weights were kept, and whether ultralytics stopped early."""
    trainer = getattr(model, "trainer", None)
    last = int(getattr(trainer, "epoch", epochs - 1)) if trainer is not None else epochs - 1
    stopped = last if last < epochs - 1 else None
    best = selection.best_epoch() if selection.keeps_best else None
    selection.choose(best if best is not None else last, stopped)


def _framework_device(device: str) -> str:
    """zoo's "cpu" / "cuda" / "cuda:1" / "cuda:0,1" -> ultralytics' "cpu" / "0" / "1" / "0,1"
    (several GPUs: ultralytics trains with its own DistributedDataParallel)."""
    if device.startswith("cuda"):
        return device.partition(":")[2] or "0"
    return device


def _asset_url(file: str) -> str:
    """Where ultralytics itself downloads ``file`` from: its assets repository's release
    (the one ``attempt_download_asset`` defaults to in the installed ultralytics)."""
    import inspect

    from ultralytics.utils import downloads

    release = inspect.signature(downloads.attempt_download_asset).parameters["release"].default
    return f"https://github.com/{downloads.GITHUB_ASSETS_REPO}/releases/download/{release}/{file}"


def _weights_home() -> Path:
    home = os.environ.get("ZOO_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "zoo") / "weights"


def _is_number(v: Any) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _forget_stale_weights(weights: Path) -> None:
    """A fresh training must not keep pickles an earlier part of the run folder left (its
    ``best.pt`` would be unpickled after training as if this training had written it)."""
    for name in ("last.pt", "best.pt"):
        (weights / name).unlink(missing_ok=True)


def _recorder(ledger, weights: Path):
    """An ultralytics callback: the sha256 of its ``last.pt`` / ``best.pt`` into the ledger."""

    def record(trainer=None) -> None:
        ledger.record(*(p for p in (weights / "last.pt", weights / "best.pt") if p.is_file()))

    return record


def _every_core(trainer=None) -> int:
    """An ultralytics callback (``on_train_start``, ``on_predict_start``): torch's threads back
    to zoo's count (zoo.training.cpu) once ultralytics has set up, and what ultralytics had
    set. On a CPU its ``select_device`` sets them to ``cpu_count - 1`` (at most 8), leaving
    a core for data loading, yet it loads in the training process (``workers=0`` on a CPU):
    on 2 cores, one core idled while the network trained and predicted. Measured on the
    idle 2-core machine, the demo's 30 epochs: 83 s on ultralytics' 1 thread, 54 s on zoo's
    2 (bench/README.md, issue 30). ``OMP_NUM_THREADS`` or ``--jobs`` set fewer."""
    import torch

    from zoo.training.cpu import training_threads

    theirs = torch.get_num_threads()
    torch.set_num_threads(training_threads())
    return theirs


def _every_core_recorded(log):
    """:func:`_every_core` for training, logged and recorded for the run's manifest (``compute``)."""

    def on_train_start(trainer=None) -> None:
        from zoo.training.cpu import Compute, record, training_threads

        theirs = _every_core()
        compute = Compute("fp32", False, training_threads(), "ultralytics trains fp32 on a CPU; threads: zoo's")
        record(compute)
        log.info("yolov8: %d torch threads (ultralytics set %d)", compute.threads, theirs)

    return on_train_start


def _epoch_logger(log, epochs: int):
    """An ultralytics callback: one log line per epoch (ultralytics' own bars are off)."""

    def on_fit_epoch_end(trainer) -> None:
        if trainer.epoch >= epochs:  # ultralytics' final validation reports as epoch + 1
            return
        loss = trainer.tloss if isinstance(trainer.tloss, dict) else {}
        text = " ".join(f"{k.split('/')[-1]} {float(v):.3f}" for k, v in loss.items())
        log.info("yolov8: epoch %d/%d %s", trainer.epoch + 1, epochs, text)

    return on_fit_epoch_end


class _BudgetStop:
    """``--budget`` inside ultralytics' epoch, by the shared loop's rule (zoo.training's
    EpochPlan): fit's seconds before training (data written, model built) count as spent,
    and training stops after the batch when the next one, at the mean, would end past the
    budget. Ultralytics' own ``time`` stops only after the batch that crossed it, and times
    from its own start."""

    def __init__(self, budget: float | None, fit_started: float, epochs: int, log):
        from zoo.training.budget import EpochPlan

        self.plan, self.fit_started, self.log = EpochPlan(epochs, 1, budget), fit_started, log

    def on_train_start(self, trainer) -> None:
        self.plan.spent = time.perf_counter() - self.fit_started
        self.plan.start()

    def on_train_batch_end(self, trainer) -> None:
        if self.plan.after_step() and not trainer.stop:
            self.plan.cut_short = trainer.stop = True
            self.log.info("budget %.0f s: stopping inside epoch %d after %d batch(es) (another would overrun)",
                          self.plan.budget, trainer.epoch + 1, self.plan.steps)

    def on_train_epoch_end(self, trainer) -> None:
        """Ultralytics' own timer checks before ``on_train_batch_end`` and may end the epoch on
        the same batch: that batch is counted here, and the stop recorded."""
        if self.plan.budget and trainer.stop and not self.plan.cut_short:
            self.plan.after_step()
            self.plan.cut_short = True


class _EpochBar:
    """zoo's progress bar (rich, on stderr, only on a terminal; see :mod:`zoo.progress`)
    over ultralytics' epochs, driven by its callbacks since the loop is ultralytics'."""

    def __init__(self, epochs: int):
        self.epochs = epochs
        self._progress = None
        self._task = None

    def start(self, trainer=None) -> None:
        from zoo.progress import enabled

        if not enabled() or self._progress is not None:
            return
        from rich.console import Console
        from rich.progress import Progress

        self._progress = Progress(*Progress.get_default_columns(), console=Console(stderr=True), transient=True)
        self._progress.start()
        done = getattr(trainer, "start_epoch", 0) or 0  # a resumed training starts part-way
        self._task = self._progress.add_task("training yolov8", total=self.epochs, completed=done)

    def advance(self, trainer) -> None:
        if self._progress is not None and trainer.epoch < self.epochs:
            self._progress.update(self._task, completed=trainer.epoch + 1)

    def stop(self, trainer=None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
