"""The kit for a dense network on the shared loop: semantic-seg from any network that maps
``(N, 3, S, S)`` images to ``(N, classes, S, S)`` logits.

In: canonical images and zoo's semantic label maps, letterboxed onto a square canvas
(:mod:`.geometry`, :mod:`.samples`). Training: Dice + CE with 255 ignored (:mod:`.loss`) on
zoo's shared loop (:func:`zoo.training.fit_backend`). Out: one
:class:`~zoo.predictions.SemanticPrediction` per image, a label map at the original image
size (logits cropped off the canvas and scaled back before the argmax); ONNX export of the
network alone (:mod:`.export`). The checkpoint it leaves in ``ctx.checkpoint_dir`` carries
the network's identity (:meth:`SegmentationBackend._identity`), which ``load`` checks.

A plugin subclasses :class:`SegmentationBackend` and says only how to build its network
(smp's architectures and MONAI's networks do).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from zoo.backend import Backend, RunContext
from zoo.dataset import Dataset, ImageRecord
from zoo.errors import ZooError
from zoo.predictions import SemanticPrediction
from zoo.selection import Selection
from zoo.tasks import Task
from zoo.training import MappedDataset, TrainConfig, fit_backend, predict_batches, restore, weights_of
from zoo.training.cache import cache_folder
from zoo.training.dense.export import export_segmentation
from zoo.training.dense.geometry import canvas_side
from zoo.training.dense.loss import SegmentationLoss
from zoo.training.dense.samples import SegmentationSamples, on_canvas
from zoo.training.onnx import with_onnx_network


class SegmentationConfig(TrainConfig):
    """What every :class:`SegmentationBackend` reads (smp's, MONAI's): loss, letterbox, flips,
    the network constructor's extra arguments."""

    loss: Literal["dice+ce", "ce", "dice"] = "dice+ce"
    keep_aspect: bool = True  # letterbox (pad) instead of stretching to a square
    flip: bool = True  # random horizontal / vertical flips while training
    model_args: dict[str, Any] = Field(default_factory=dict)  # passed to the network's class
    # Tuned on the demo data (bench/README.md): AdamW at 3e-3 reaches in 20 epochs what 1e-3
    # reaches in 30 (the demo's preset, configs/demo.yaml, keeps the 20 epochs).
    batch: int = 8
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = 3e-3
    warmup_iters: int = 20


class SegmentationBackend(Backend):
    """A dense network ``(N, 3, S, S) -> (N, classes, S, S) logits`` for semantic-seg on zoo's
    shared loop: letterboxed samples, Dice + CE with 255 ignored, logits scaled back.

    A subclass names the network: :meth:`_build`, :meth:`_identity` (what a checkpoint must
    match), :meth:`_canvas` (the stride both input sides must be multiples of, and a minimum
    side), :meth:`_title` and :meth:`versions`."""

    Config: ClassVar[type[SegmentationConfig]] = SegmentationConfig
    #: the network's class name: set by a subclass, or read from its spec's options (smp's)
    architecture: ClassVar[str] = ""
    #: True: the network takes deep pixels unrounded (float32 on the 0..255 scale, the intensity
    #: rule's output before 8-bit rounding; samples.network_pixels), as MONAI's do
    deep_pixels: ClassVar[bool] = False

    def __init__(self, task: Task, meta: Dataset, config: SegmentationConfig, ctx: RunContext):
        super().__init__(task, meta, config, ctx)
        self.classes = self.meta.semantic_classes()
        if len(self.classes) > 255:
            raise ZooError(f"{len(self.classes) - 1} categories: label maps hold at most 254 (255 means ignore)")
        self.side = canvas_side(config.imgsz, *self._canvas())
        self.model = None

    # -- the network (a subclass says which) -------------------------------------------

    def _canvas(self) -> tuple[int, int]:
        """``(stride, minimum side)`` of the square canvas the network accepts."""
        raise NotImplementedError

    def _build(self, *, pretrained: bool):
        """The network, freshly initialised (``pretrained``: with the weights it starts from)."""
        raise NotImplementedError

    def _identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be loaded into this backend."""
        raise NotImplementedError

    def _title(self) -> str:
        return self.architecture

    def _start_from(self, model, path) -> None:
        """``weights: FILE``: a zoo checkpoint or a plain state dict; layers whose shape
        differs (another number of classes) keep their fresh initialisation."""
        state = weights_of(path, trust=self.ctx.trust_weights)
        own = model.state_dict()
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if not usable:
            raise ZooError(f"{path}: no layer fits {self._title()}")
        model.load_state_dict(usable, strict=False)
        self.ctx.log.info("started from %s (%d of %d tensors)", path, len(usable), len(own))

    # -- Backend ---------------------------------------------------------------------

    def fit(self, train: Dataset, selection: Selection) -> dict[str, Any]:
        c = self.config
        sided = [n for n in self.meta.categories if any(w in n.lower() for w in ("left", "right"))]
        if c.flip and sided:
            # a mirrored left kidney looks like a right one: flipping would teach the swap
            self.ctx.log.warning(
                "categories %s name a side, and random flips swap sides; consider --set flip=false",
                ", ".join(sided[:3]),
            )
        model = self._build(pretrained=True)
        if c.weights is not None:
            self._start_from(model, c.weights)
        samples = SegmentationSamples(self.meta, c.imgsz, self.side, c.keep_aspect, c.flip, self.deep_pixels)
        samples.decode_once(train.images, cache_folder(self.ctx.work_dir))  # not again every epoch
        criterion = SegmentationLoss(c.loss)

        def loss_fn(model, batch):
            images, targets = batch[0], batch[1]
            return criterion(model(images), targets)

        # a conv net on (N, 3, S, S) batches: channels_last, and bf16 autocast on a CPU with
        # native bf16 (the demo's mIoU within fp32's seed spread: bench/README.md)
        result = fit_backend(self, model, MappedDataset(train.images, samples), selection, loss_fn=loss_fn,
                             extra=self._identity(), description=self._title(), bf16=True, channels_last=True)
        self._restore(model)  # the kept epoch's weights, as load() would give
        return {"final_loss": result.final_loss, "best_epoch": result.best_epoch,
                "iterations": result.iterations, "seconds": result.seconds, "history": result.reported_history,
                **({"budget": result.budget} if result.budget else {})}

    def _restore(self, model) -> None:
        restore(model, self.ctx.checkpoint_dir, self._identity(), ledger=self.ctx.ledger)
        model.to(self.ctx.device)
        model.eval()

    @classmethod
    def load(cls, task: Task, meta: Dataset, config: SegmentationConfig, ctx: RunContext) -> SegmentationBackend:
        backend = cls(task, meta, config, ctx)
        model = backend._build(pretrained=False)  # the checkpoint holds every weight
        backend._restore(model)
        backend.model = model
        return backend

    def predict(self, images: Sequence[ImageRecord]) -> Iterator[SemanticPrediction]:
        import numpy as np

        dtype = np.uint8 if len(self.classes) <= 255 else np.int32
        for record, logits in self._logits_at_image_size(images):
            labels = logits.argmax(0).to("cpu").numpy().astype(dtype)
            yield SemanticPrediction(image_id=record.id, label_map=labels)

    def predict_probabilities(self, images: Sequence[ImageRecord]) -> Iterator[Any]:
        """The softmax of the logits ``predict`` argmaxes: ``(classes, H, W)`` float32."""
        for _, logits in self._logits_at_image_size(images):
            yield logits.softmax(0).to("cpu").numpy()

    def _logits_at_image_size(self, images: Sequence[ImageRecord]):
        """``(record, (classes, H, W) logits)`` per image: letterboxed, through the network,
        cropped off the canvas and scaled back to the image's own size."""
        import torch
        import torch.nn.functional as F

        if self.model is None:
            raise ZooError(f"{self.architecture}: predict() before fit() or load()")
        c = self.config
        model = self.model.eval()
        device = torch.device(self.ctx.device)
        for chunk in predict_batches(images, max(1, c.batch), f"predict {self.architecture}"):
            boxes, tensors = zip(*(on_canvas(r, c.imgsz, self.side, c.keep_aspect, self.deep_pixels) for r in chunk))
            with torch.inference_mode():
                logits = model(torch.stack(tensors).to(device))
                for record, box, out in zip(chunk, boxes, logits):
                    # scale logits (not labels) back: smooth borders at the original size
                    up = F.interpolate(
                        box.crop(out)[None], size=(box.height, box.width), mode="bilinear", align_corners=False
                    )
                    yield record, up[0]

    def num_parameters(self) -> int | None:
        if self.model is None:
            return None
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def export_onnx(self, out_dir, *, opset, dynamic, sample) -> dict[str, Any]:
        return export_segmentation(self, out_dir, opset=opset, dynamic=dynamic, sample=sample)

    @classmethod
    def load_onnx(cls, task: Task, meta: Dataset, config: SegmentationConfig, ctx: RunContext,
                  onnx_file) -> SegmentationBackend:
        return with_onnx_network(cls(task, meta, config, ctx), onnx_file)
