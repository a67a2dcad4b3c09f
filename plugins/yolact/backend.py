"""The ``yolact`` and ``yolact++`` backends: canonical data in, canonical instances out.

Translation: each image is resized to ``imgsz x imgsz`` (the paper's 550 x 550, aspect
ratio not kept) and normalised with ImageNet statistics; instances become normalised boxes,
0-based labels and masks at the input size (zoo's one rasteriser; a box-only instance
becomes its filled box); ignored instances become ignored regions. Predictions come back in
original-image pixels, masks as COCO RLE over the whole image. Training is
:func:`zoo.training.fit` with :class:`~zoo.plugins.yolact.loss.YolactLoss`.

Default backbone ``resnet18``: the paper's ResNet-50/101 are a ``--set backbone=`` away, but
on a CPU resnet18 trains several times faster and its C3 (stride 8) still resolves the
demo's 10-px cells.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from zoo.backend import Backend, RunContext
from zoo.config import dump_config
from zoo.dataset import Dataset, ImageRecord
from zoo.errors import ZooError, did_you_mean
from zoo.predictions import Detection, InstancePredictions
from zoo.selection import Selection
from zoo.tasks import Task
from zoo.training import LAST, MappedDataset, TrainConfig, fit_backend, predict_batches, restore
from zoo.training.cache import DecodedOnce, cache_folder

_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, which the ResNet backbone assumes
_STD = (0.229, 0.224, 0.225)
DEPTHS = ("resnet18", "resnet34", "resnet50", "resnet101")


class YolactConfig(TrainConfig):
    """Settings of ``yolact`` (plus those of :class:`zoo.training.TrainConfig`)."""

    backbone: str = "resnet18"
    k: int = 32  # prototypes (the paper's k)
    fpn_channels: int = 256
    anchor_sizes: list[float] | None = None  # P3..P7 in input pixels; None = the paper's 24..384 scaled to imgsz and the data
    anchor_scales: list[float] = [1.0]  # per level, multiplying the size
    aspect_ratios: list[float] = [1.0, 0.5, 2.0]  # w / h
    dcn_interval: int = 0  # YOLACT++: every n-th block of C3-C5 deformable; 0 = none
    rescoring: bool = False  # YOLACT++: fast mask re-scoring
    pos_iou: float = 0.5  # anchor matching: positive at or above
    neg_iou: float = 0.4  # ... background below
    neg_pos: float = 3.0  # OHEM: negatives per positive
    masks_to_train: int = 100  # per image
    conf_weight: float = 1.0  # the paper's loss weights
    box_weight: float = 1.5
    mask_weight: float = 6.125
    semantic_weight: float = 1.0
    maskiou_weight: float = 25.0
    nms: Literal["fast", "standard"] = "fast"
    nms_iou: float = 0.5
    top_k: int = 200  # candidates per class into NMS
    score_threshold: float = 0.05
    max_detections: int = 100
    mask_threshold: float = 0.5
    hflip: float = 0.5

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, v: str) -> str:
        if v not in DEPTHS:
            raise ValueError(f"unknown backbone {v!r}{did_you_mean(v, DEPTHS)}; known: {', '.join(DEPTHS)}")
        return v

    @field_validator("anchor_sizes")
    @classmethod
    def _five_levels(cls, v):
        if v is not None and len(v) != 5:
            raise ValueError(f"anchor_sizes needs 5 sizes (P3..P7), got {len(v)}")
        return v


class YolactPlusConfig(YolactConfig):
    """YOLACT++'s changes (section 6): deformable convs every 3rd block of C3-C5, three
    anchor scales per level, mask re-scoring."""

    anchor_scales: list[float] = [1.0, 2 ** (1 / 3), 2 ** (2 / 3)]
    dcn_interval: int = 3
    rescoring: bool = True


# ----------------------------------------------------------------------------- data


class YolactSamples(DecodedOnce):
    """``record -> (image (3, S, S), target dict)`` (see :mod:`.loss` for the target keys).

    Picklable (it runs in DataLoader workers). ``decode`` makes the square image and the
    targets at ``S`` (once per run, :meth:`decode_once`); ``sample`` adds the random flip."""

    cache_name = "yolact"

    def __init__(self, imgsz: int, hflip: float = 0.0):
        self.imgsz = imgsz
        self.hflip = hflip

    def params(self) -> dict[str, Any]:
        return {"imgsz": self.imgsz}

    def decode(self, record: ImageRecord) -> tuple:
        """``(image uint8 (S, S, 3), boxes, labels, masks uint8 (n, S, S), ignore_boxes,
        ignore uint8 (S, S))``."""
        import numpy as np

        S = self.imgsz
        sx, sy = S / record.width, S / record.height
        keep = [i for i in record.instances if not i.ignore and i.category >= 0]
        ignored = [i for i in record.instances if i.ignore]
        return (
            square_rgb(record, S),
            _boxes(keep, sx, sy, S).numpy(),
            np.array([i.category for i in keep], dtype=np.int64),
            np.stack([_mask(i, record, S) for i in keep]) if keep else np.zeros((0, S, S), np.uint8),
            _boxes(ignored, sx, sy, S).numpy(),
            np.any([_mask(i, record, S) for i in ignored], axis=0).astype(np.uint8) if ignored
            else np.zeros((S, S), np.uint8),
        )

    def sample(self, arrays: tuple):
        import numpy as np
        import torch

        rgb, *rest = (np.array(a) for a in arrays)  # copies: a cache on disk is read-only
        target = dict(zip(("boxes", "labels", "masks", "ignore_boxes", "ignore"), map(torch.from_numpy, rest)))
        image = normalised(rgb)
        if self.hflip > 0 and random.random() < self.hflip:
            image, target = _hflip(image, target)
        return image, target


def square_rgb(record: ImageRecord, size: int):
    """``(size, size, 3)`` uint8: the image stretched to a square."""
    import numpy as np
    from PIL import Image

    return np.asarray(record.open().convert("RGB").resize((size, size), Image.BILINEAR))


def normalised(rgb):
    """``(S, S, 3)`` uint8 -> ``(3, S, S)`` float tensor, normalised with ImageNet's statistics."""
    import torch

    x = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)
    return (x - torch.tensor(_MEAN)[:, None, None]) / torch.tensor(_STD)[:, None, None]


def load_image(record: ImageRecord, size: int):
    """``(3, size, size)`` normalised float tensor of the image, stretched to a square."""
    import numpy as np

    return normalised(np.array(square_rgb(record, size)))


def _boxes(instances, sx: float, sy: float, size: int):
    """Normalised xyxy boxes, clipped to the image, at least one input pixel wide."""
    import torch

    out = torch.zeros((len(instances), 4), dtype=torch.float32)
    for k, inst in enumerate(instances):
        x0, y0, x1, y1 = inst.bbox
        b = torch.tensor([x0 * sx, y0 * sy, x1 * sx, y1 * sy]).clamp(0, size) / size
        b[2:] = torch.maximum(b[2:], b[:2] + 1.0 / size)
        out[k] = b
    return out


def _mask(inst, record: ImageRecord, size: int):
    import numpy as np
    from PIL import Image

    from zoo.data.raster import instance_mask

    m = instance_mask(inst, record.height, record.width).astype(np.uint8) * 255
    return (np.asarray(Image.fromarray(m).resize((size, size), Image.BILINEAR)) > 127).astype(np.uint8)


def _hflip(image, target):
    boxes = target["boxes"].clone()
    boxes[:, 0], boxes[:, 2] = 1 - target["boxes"][:, 2], 1 - target["boxes"][:, 0]
    ignore_boxes = target["ignore_boxes"].clone()
    ignore_boxes[:, 0], ignore_boxes[:, 2] = 1 - target["ignore_boxes"][:, 2], 1 - target["ignore_boxes"][:, 0]
    flipped = {**target, "boxes": boxes, "ignore_boxes": ignore_boxes,
               "masks": target["masks"].flip(-1), "ignore": target["ignore"].flip(-1)}
    return image.flip(-1), flipped


def collate(batch: list):
    """Stack the (same-sized) images; keep the targets as a list."""
    import torch

    return torch.stack([image for image, _ in batch]), [target for _, target in batch]


# ----------------------------------------------------------------------------- backend


class Yolact(Backend):
    """YOLACT; :class:`YolactPlusPlus` only changes the config defaults."""

    Config: ClassVar = YolactConfig

    @property
    def name(self) -> str:
        return self.spec.name

    def __init__(self, task: Task, meta: Dataset, config: YolactConfig, ctx: RunContext):
        super().__init__(task, meta, config, ctx)
        self.model = None
        self.masks = task.draws_masks  # detect: the same model, boxes only

    # the model ----------------------------------------------------------------

    def build(self, anchor_sizes: Sequence[float], load_pretrained: bool = True):
        from zoo.plugins.yolact.model import YolactNet

        c = self.config
        weights = None
        if c.pretrained and load_pretrained:
            from zoo.training.weights import cached_weights

            weights = cached_weights(c.backbone, what=f"pretrained backbone {c.backbone}")
        return YolactNet(
            num_classes=len(self.meta.categories), imgsz=c.imgsz, anchor_sizes=anchor_sizes,
            scales=c.anchor_scales, ratios=c.aspect_ratios, depth=c.backbone, k=c.k, channels=c.fpn_channels,
            dcn_interval=c.dcn_interval, rescoring=c.rescoring, weights=weights,
        )

    def anchor_sizes(self, train: Dataset) -> list[float]:
        """``anchor_sizes`` when set, else the paper's scaled to ``imgsz`` and the training
        objects (see :func:`~zoo.plugins.yolact.boxes.scaled_sizes`)."""
        from zoo.plugins.yolact.boxes import scaled_sizes

        if self.config.anchor_sizes:
            return list(self.config.anchor_sizes)
        S = self.config.imgsz
        sides = [
            ((x1 - x0) * S / r.width * (y1 - y0) * S / r.height) ** 0.5
            for r in train.images for i in r.instances if not i.ignore
            for x0, y0, x1, y1 in [i.bbox]
        ]
        return scaled_sizes(S, sides)

    def criterion(self):
        from zoo.plugins.yolact.loss import LossWeights, YolactLoss

        c = self.config
        weights = LossWeights(c.conf_weight, c.box_weight, c.mask_weight, c.semantic_weight, c.maskiou_weight)
        return YolactLoss(weights, c.pos_iou, c.neg_iou, c.neg_pos, c.masks_to_train)

    # training -----------------------------------------------------------------

    def fit(self, train: Dataset, selection: Selection) -> dict[str, Any]:
        sizes = self.anchor_sizes(train)
        self.ctx.log.info("%s: anchor sizes P3..P7 %s px at imgsz %d", self.name, sizes, self.config.imgsz)
        model = self.build(sizes)
        if self.config.weights is not None:
            from zoo.training.weights import load_matching
            from zoo.training import weights_of

            load_matching(model, weights_of(self.config.weights, trust=self.ctx.trust_weights), str(self.config.weights))
        criterion = self.criterion()

        def loss_fn(net, batch):
            images, targets = batch
            out = net(images)
            return criterion(out, targets, net.anchors(out), net.maskiou)

        samples = YolactSamples(self.config.imgsz, self.config.hflip)
        samples.decode_once(train.images, cache_folder(self.ctx.work_dir))  # not again every epoch
        result = fit_backend(self, model, MappedDataset(train.images, samples), selection, loss_fn=loss_fn,
                             collate=collate, extra=self._extra(), description=self.name)
        return result.summary()

    def _extra(self) -> dict[str, Any]:
        return {"backend": self.name, "categories": list(self.meta.categories), "config": dump_config(self.config)}

    @classmethod
    def load(cls, task: Task, meta: Dataset, config: YolactConfig, ctx: RunContext) -> Yolact:
        self = cls(task, meta, config, ctx)
        model = self.build([1.0] * 5, load_pretrained=False)  # the checkpoint holds the anchor sizes
        restore(model, ctx.checkpoint_dir, {"categories": list(self.meta.categories)}, ledger=ctx.ledger)
        self.model = model
        return self

    # prediction ---------------------------------------------------------------

    def settings(self):
        from zoo.plugins.yolact.inference import InferenceSettings

        c = self.config
        return InferenceSettings(c.nms, c.nms_iou, c.top_k, c.score_threshold, c.max_detections)

    def predict(self, images: Sequence[ImageRecord]) -> Iterator[InstancePredictions]:
        import torch

        from zoo.plugins.yolact.inference import detect

        if self.model is None:
            raise ZooError(f"{self.name}: no model; fit() or load() first ({self.ctx.checkpoint_dir / LAST})")
        model = self.model.to(self.ctx.device).eval()
        settings = self.settings()
        for chunk in predict_batches(images, self.config.batch, f"{self.name} predict"):
            x = torch.stack([load_image(r, self.config.imgsz) for r in chunk]).to(self.ctx.device)
            with torch.no_grad():
                out = model(x)
                anchors = model.anchors(out)
                found = [detect(out, b, anchors, settings, model.maskiou) for b in range(len(chunk))]
            for record, dets in zip(chunk, found):
                yield self.translate(record, dets)

    def export_onnx(self, out_dir, *, opset, dynamic, sample) -> dict[str, Any]:
        from zoo.backend import Unsupported

        if self.config.dcn_interval:
            # checked with torch 2.14 / torchvision 0.29: torch.onnx.export stops at the op, opsets 17-20
            raise Unsupported("its deformable convolutions (torchvision's deform_conv2d, dcn_interval "
                              f"{self.config.dcn_interval}) have no ONNX export: torchvision maps no ONNX op to "
                              "them (ONNX's DeformConv, opset 19, is not wired to it); train with dcn_interval=0 "
                              "(yolact) to export")
        if self.config.rescoring:
            raise Unsupported("its mask re-scoring net runs on every detection's cropped mask after NMS, a second "
                              "network zoo does not export; train with rescoring=false to export")
        if dynamic:
            raise Unsupported("--dynamic: its anchors are laid on the imgsz x imgsz grid every image is stretched "
                              "to; export without --dynamic (the batch is always free)")
        import torch

        from zoo.plugins.yolact.export import export_yolact

        S = self.config.imgsz
        batch = torch.stack([load_image(r, S) for r in sample]) if sample else torch.zeros(1, 3, S, S)
        return export_yolact(self, out_dir, opset=opset, batch=batch, mean=_MEAN, std=_STD)

    @classmethod
    def load_onnx(cls, task: Task, meta: Dataset, config: YolactConfig, ctx: RunContext, onnx_file) -> Yolact:
        from zoo.plugins.yolact.export import OnnxYolact

        self = cls(task, meta, config, ctx)
        self.model = OnnxYolact(onnx_file, ctx.device)
        return self

    def translate(self, record: ImageRecord, dets) -> InstancePredictions:
        """Normalised detections -> canonical ones in original pixels."""
        W, H = record.width, record.height
        boxes = dets.boxes.double().cpu()
        boxes[:, 0::2] *= W
        boxes[:, 1::2] *= H
        out = []
        for k in range(len(boxes)):
            det = Detection(category=int(dets.classes[k]), score=float(dets.scores[k]), bbox=tuple(float(v) for v in boxes[k]))
            if self.masks:
                det.mask = self._mask_rle(dets.masks[k], dets.boxes[k], H, W)
            out.append(det)
        return InstancePredictions(image_id=record.id, detections=out)

    def _mask_rle(self, prob, box, H: int, W: int) -> dict:
        """A prototype-resolution mask -> upsampled to the image, cropped by its box (the
        paper crops at inference), thresholded, RLE; one at a time to bound memory."""
        import torch.nn.functional as F

        from zoo.plugins.yolact.masks import crop
        from zoo.data.raster import mask_to_rle

        full = F.interpolate(prob[None, None].float(), size=(H, W), mode="bilinear", align_corners=False)[0]
        full = crop(full, box[None].float())[0]
        return mask_to_rle((full > self.config.mask_threshold).cpu().numpy())

    def num_parameters(self) -> int | None:
        return None if self.model is None else sum(p.numel() for p in self.model.parameters())

    def versions(self) -> dict[str, str]:
        import torch
        import torchvision

        return {"torch": torch.__version__, "torchvision": torchvision.__version__}


class YolactPlusPlus(Yolact):
    Config: ClassVar = YolactPlusConfig
