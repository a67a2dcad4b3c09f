"""The classic torchvision classifiers for ``classify``: one class, each backend name's
torchvision ``architecture`` in its spec's options.

Trained on the image-level labels (``Dataset.classes`` / ``ImageRecord.labels``: labelme
``flags``, class folders); an image takes part only with exactly one label
(:meth:`zoo.tasks.Classify.is_annotated`). Images are resized to ``imgsz`` x ``imgsz`` and
normalised with ImageNet's mean and std (what pretrained weights expect, harmless from
scratch); training adds a random resized crop, flips and a little colour jitter.
Which epoch is kept is zoo's selection protocol (:mod:`zoo.selection`), as for every backend.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from zoo.backend import Backend, RunContext
from zoo.config import dump_config
from zoo.dataset import Dataset, ImageRecord
from zoo.errors import ConfigError, ZooError
from zoo.predictions import ClassPrediction
from zoo.selection import Selection
from zoo.tasks import Task
from zoo.training import (
    MappedDataset,
    TrainConfig,
    criterion_loss,
    fit_backend,
    predict_batches,
    restore,
)
from zoo.training.cache import DecodedOnce, cache_folder

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


#: the networks measured to train faster in bf16 autocast at the same accuracy, on a CPU with
#: native bf16 (the demo's shipped defaults, 3 seeds, bench/README.md, issue 30): resnet18 0.59x
#: the training time, accuracy 0.986 in both; resnet50 0.57x, accuracy 1.000 in both.
#: mobilenet_v3_small was slower in bf16 (39 s against 29 s): it and the networks not
#: measured stay fp32.
BF16_ARCHS = ("resnet18", "resnet50")


class ClassifierConfig(TrainConfig):
    """Settings of the classifier backends (plus those of :class:`zoo.training.TrainConfig`)."""

    crop_scale: float = 0.6  # random resized crop keeps this share of the image or more; 1 = off
    hflip: float = 0.5
    vflip: float = 0.0  # smears and slides have no "up": set 0.5 there
    color_jitter: float = 0.1  # brightness / contrast / saturation strength; 0 = off
    label_smoothing: float = 0.0


def transforms(cfg: ClassifierConfig, train: bool):
    """The torchvision transform: PIL image -> normalised ``(3, imgsz, imgsz)`` tensor."""
    import torch
    from torchvision.transforms import v2

    size = (cfg.imgsz, cfg.imgsz)
    steps: list[Any] = [v2.ToImage()]
    if train:
        if cfg.crop_scale < 1:
            steps.append(v2.RandomResizedCrop(size, scale=(cfg.crop_scale, 1.0), antialias=True))
        else:
            steps.append(v2.Resize(size, antialias=True))
        if cfg.hflip > 0:
            steps.append(v2.RandomHorizontalFlip(cfg.hflip))
        if cfg.vflip > 0:
            steps.append(v2.RandomVerticalFlip(cfg.vflip))
        if cfg.color_jitter > 0:
            j = cfg.color_jitter
            steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j))
    else:
        steps.append(v2.Resize(size, antialias=True))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    return v2.Compose(steps)


class ClassSamples(DecodedOnce):
    """``record -> (tensor, class index)``; picklable for DataLoader workers.

    ``decode`` (once per run, :meth:`decode_once`) shrinks the image to the fewest pixels the
    transform can use: its shorter side to ``imgsz`` / sqrt(3/4 ``crop_scale``), so that the
    smallest crop :func:`transforms` draws (that share of the area, aspect 3/4) still has
    ``imgsz`` pixels or more each way and is shrunk to ``imgsz``, never enlarged.
    """

    cache_name = "classify"

    def __init__(self, transform, imgsz: int, crop_scale: float = 1.0):
        self.transform = transform
        self.side = math.ceil(imgsz / math.sqrt(0.75 * crop_scale)) if crop_scale < 1 else imgsz

    def params(self) -> dict[str, Any]:
        return {"side": self.side}

    def decode(self, record: ImageRecord):
        import numpy as np
        from PIL import Image

        img = record.open()
        W, H = img.size
        s = self.side / min(W, H)
        if s < 1:
            img = img.resize((max(1, round(W * s)), max(1, round(H * s))), Image.BILINEAR)
        return np.asarray(img), np.array([record.labels[0]], dtype=np.int64)

    def sample(self, arrays):
        import numpy as np

        rgb, label = arrays
        return self.transform(np.array(rgb)), int(label[0])  # a copy: a cache on disk is read-only


def build_classifier(arch: str, num_classes: int, pretrained: bool):
    """torchvision's ``arch`` with a ``num_classes`` head; ImageNet weights (from the local
    cache only) under the new head when ``pretrained``."""
    from torch import nn
    from torchvision.models import get_model

    if not pretrained:
        return get_model(arch, weights=None, num_classes=num_classes)
    from zoo.training.weights import cached_weights

    model = get_model(arch, weights=cached_weights(arch, what=f"pretrained {arch}"))
    # the last Linear is the 1000-class ImageNet head in every one of these architectures
    name, last = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr_name = name.rpartition(".")[2]
    new = nn.Linear(last.in_features, num_classes)
    if isinstance(parent, nn.Sequential):
        parent[int(setattr_name)] = new
    else:
        setattr(parent, setattr_name, new)
    return model


def _refuse_too_small(model, arch: str, imgsz: int, largest: int = 1024) -> None:
    """Before training: an architecture whose pooling needs more pixels than ``imgsz``
    (alexnet: 63) is refused in one line naming the smallest size that runs, found by a
    forward pass of a blank image (bisected), instead of failing at the first batch."""
    import torch

    def runs(size: int) -> bool:
        try:
            with torch.no_grad():
                model(torch.zeros(1, 3, size, size))
            return True
        except RuntimeError:
            return False

    was_training = model.training
    model.eval()
    try:
        if runs(imgsz):
            return
        lo, hi = imgsz, 2 * imgsz  # runs(lo) is False: double up to a size that runs, then bisect
        while not runs(hi):
            if hi >= largest:
                raise ConfigError(f"{arch}: a blank {hi} px image does not run through it; check the model")
            lo, hi = hi, 2 * hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if runs(mid) else (mid, hi)
    finally:
        model.train(was_training)
    raise ConfigError(f"{arch} needs imgsz >= {hi} (its pooling leaves nothing of a {imgsz} px image); "
                      f"pass --imgsz {hi} or more")


class TvClassifier(Backend):
    """A torchvision classification architecture (the spec's ``architecture``) as a zoo backend."""

    Config = ClassifierConfig

    @property
    def arch(self) -> str:
        return self.option("architecture")

    def __init__(self, task: Task, meta: Dataset, config: ClassifierConfig, ctx: RunContext):
        super().__init__(task, meta, config, ctx)
        if not self.meta.classes:
            raise ZooError(f"{self.arch}: the dataset has no image-level classes (labelme flags or class folders)")
        self.model = None

    def fit(self, train: Dataset, selection: Selection) -> dict[str, Any]:
        import torch

        model = build_classifier(self.arch, len(self.meta.classes), self.config.pretrained)
        if self.config.weights is not None:
            from zoo.training.weights import load_matching
            from zoo.training import weights_of

            load_matching(model, weights_of(self.config.weights, trust=self.ctx.trust_weights),
                          str(self.config.weights))
        usable = [r for r in train.images if self.task.is_annotated(r)]
        if not usable:
            raise ZooError(f"{self.arch}: no training image has exactly one class label")
        _refuse_too_small(model, self.arch, self.config.imgsz)
        samples = ClassSamples(transforms(self.config, train=True), self.config.imgsz, self.config.crop_scale)
        samples.decode_once(usable, cache_folder(self.ctx.work_dir))  # not again every epoch
        result = fit_backend(
            self, model, MappedDataset(usable, samples), selection,
            loss_fn=criterion_loss(torch.nn.CrossEntropyLoss(label_smoothing=self.config.label_smoothing)),
            extra={"backend": self.arch, "classes": list(self.meta.classes), "config": dump_config(self.config)},
            # a conv net on (N, 3, S, S) batches: in channels_last one training step cost 27 %
            # less CPU for efficientnet_b0, 22 % mobilenet_v3_small, 17 % resnet50, 5 % alexnet,
            # the same for resnet18 (bench/README.md, issue 30); bf16 where it was measured
            description=self.arch, channels_last=True, bf16=self.arch in BF16_ARCHS,
        )
        return {"loss": result.final_loss, "epochs": len(result.history), "train_seconds": round(result.seconds, 2),
                "history": result.reported_history, **({"budget": result.budget} if result.budget else {})}

    def _logits(self, model, records: Sequence[ImageRecord]):
        """Logits for ``records`` (eval transform), in order, batch by batch."""
        import torch

        tf = transforms(self.config, train=False)
        for chunk in predict_batches(records, self.config.batch, f"{self.arch} predict"):
            x = torch.stack([tf(r.open()) for r in chunk]).to(self.ctx.device)
            with torch.no_grad():
                yield chunk, model(x).float().cpu()

    @classmethod
    def load(cls, task: Task, meta: Dataset, config: ClassifierConfig, ctx: RunContext) -> TvClassifier:
        self = cls(task, meta, config, ctx)
        model = build_classifier(self.arch, len(self.meta.classes), pretrained=False)
        restore(model, ctx.checkpoint_dir, {"classes": list(self.meta.classes)}, ledger=ctx.ledger)
        self.model = model
        return self

    def predict(self, images: Sequence[ImageRecord]) -> Iterator[ClassPrediction]:
        if self.model is None:
            raise ZooError(f"{self.arch}: no model; fit() or load() first")
        model = self.model.to(self.ctx.device).eval()
        for chunk, logits in self._logits(model, images):
            probs = logits.softmax(1)
            for record, p in zip(chunk, probs):
                yield ClassPrediction(image_id=record.id, label=int(p.argmax()), scores=[float(v) for v in p])

    def num_parameters(self) -> int | None:
        return None if self.model is None else sum(p.numel() for p in self.model.parameters())

    def export_onnx(self, out_dir, *, opset, dynamic, sample) -> dict[str, Any]:
        import torch

        from zoo.plugins.tv_models.export import export_classifier

        tf = transforms(self.config, train=False)
        size = self.config.imgsz
        batch = torch.stack([tf(r.open()) for r in sample]) if sample else torch.zeros(1, 3, size, size)
        return export_classifier(self, out_dir, opset=opset, dynamic=dynamic, batch=batch, mean=MEAN, std=STD)

    @classmethod
    def load_onnx(cls, task: Task, meta: Dataset, config: ClassifierConfig, ctx: RunContext,
                  onnx_file) -> TvClassifier:
        from zoo.training.onnx import with_onnx_network

        return with_onnx_network(cls(task, meta, config, ctx), onnx_file)

    def versions(self) -> dict[str, str]:
        import torch
        import torchvision

        return {"torch": torch.__version__, "torchvision": torchvision.__version__}
