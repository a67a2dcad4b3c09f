"""Faster / Mask / Keypoint R-CNN on torchvision's detection models.

Translation only: canonical instances become torchvision targets (``boxes`` xyxy,
``labels`` = category + 1 because 0 is torchvision's background, ``masks``, ``keypoints``),
and torchvision's outputs become canonical detections in original-image pixels (masks as
COCO RLE over the whole image, keypoints with a score each). Training is
:func:`zoo.training.fit`.

Image size: each image is shrunk (never enlarged) so that its longer side is at most
``imgsz`` before it is decoded into a tensor, and the model's own transform gets
``min_size = max_size = imgsz``, so the network sees images with their longer side at
``imgsz`` (as YOLO's letterbox does) instead of torchvision's default 800-1333 px.
Anchor sizes are torchvision's (32-512 px, made for 800-px images) scaled by
``imgsz / 800``, so objects keep the size relation to anchors the design assumes.

Backbone default ``resnet18_fpn``: the lightest ResNet FPN (28 M parameters with the
Faster R-CNN heads, against 41 M for ``resnet50_fpn``), so a CPU can train it, and its
FPN starts at stride 4, which small objects such as cells need. ``mobilenet_v3_large_fpn``
(19 M, torchvision's fast detector) is cheaper per step but its features start at stride
16: on the demo smears it scored val AP 0.00 after 5 epochs and 0.11 after 30, where
``resnet18_fpn`` had 0.61 after 5 (bench/README.md). Any of :data:`BACKBONES` is a
``--set backbone=...`` away.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import field_validator

from zoo.backend import Backend, RunContext
from zoo.config import dump_config
from zoo.data.keypoints import flip_permutation
from zoo.dataset import Dataset, ImageRecord
from zoo.errors import ZooError, did_you_mean
from zoo.predictions import Detection, InstancePredictions
from zoo.selection import Selection
from zoo.tasks import Task
from zoo.training import LAST, MappedDataset, TrainConfig, collate_lists, fit_backend, predict_batches, restore
from zoo.training.cache import DecodedOnce, cache_folder

_log = logging.getLogger("zoo.tv_models")

#: backbone name -> (family, torchvision model name)
BACKBONES: dict[str, tuple[str, str]] = {
    "mobilenet_v3_large_fpn": ("mobilenet", "mobilenet_v3_large"),
    "resnet18_fpn": ("resnet", "resnet18"),
    "resnet34_fpn": ("resnet", "resnet34"),
    "resnet50_fpn": ("resnet", "resnet50"),
    "resnet101_fpn": ("resnet", "resnet101"),
}
_BASE_ANCHORS = (32, 64, 128, 256, 512)  # torchvision's, for 800-px images
#: the heads measured to keep their quality under bf16 autocast on a CPU with native bf16
#: (time to AP50 0.8 on the demo, bench/README.md, issue 30: Faster R-CNN 3 seeds, Mask
#: R-CNN 1): an epoch 1.44x / 1.75x as fast, the same AP50 epoch for epoch. keypoint-rcnn's
#: heatmaps were not measured and stay fp32.
BF16_HEADS = ("faster", "mask")


class RCNNConfig(TrainConfig):
    """Settings of the R-CNN backends (plus those of :class:`zoo.training.TrainConfig`)."""

    backbone: str = "resnet18_fpn"
    trainable_layers: int | None = None  # backbone stages trained; None = all from scratch, 3 pretrained
    anchor_sizes: list[float] | None = None  # None = torchvision's 32..512 scaled by imgsz / 800
    hflip: float = 0.5  # probability of a horizontal flip while training
    score_threshold: float = 0.05  # detections below this are dropped
    nms_iou: float = 0.5
    max_detections: int = 100  # per image (COCO's maxDets)
    # torchvision's RoI counts are made for 800-px COCO images (2000 proposals, 512 sampled);
    # at a few hundred pixels they only cost time: the box head runs once per proposal
    proposals: int = 300  # region proposals kept per image at test time (twice that in training)
    rois_per_image: int = 128  # proposals sampled per image to train the box head
    keypoint_head_layers: int = 8  # keypoint-rcnn: conv layers of the keypoint head (torchvision's 8)
    keypoint_head_channels: int = 512  # ... and their width; the head dominates keypoint-rcnn's cost
    mask_threshold: float = 0.5  # mask-rcnn: probability above which a pixel is in the mask

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, v: str) -> str:
        if v not in BACKBONES:
            raise ValueError(f"unknown backbone {v!r}{did_you_mean(v, BACKBONES)}; known: {', '.join(BACKBONES)}")
        return v


# ----------------------------------------------------------------------------- model


def anchor_sizes(cfg: RCNNConfig) -> tuple[float, ...]:
    if cfg.anchor_sizes:
        return tuple(float(s) for s in cfg.anchor_sizes)
    return tuple(round(s * cfg.imgsz / 800, 2) for s in _BASE_ANCHORS)


def build_model(kind: str, cfg: RCNNConfig, num_classes: int, num_keypoints: int = 0, load_pretrained: bool = True):
    """A torchvision ``FasterRCNN`` / ``MaskRCNN`` / ``KeypointRCNN`` sized for ``cfg.imgsz``.

    ``num_classes`` counts the background. Structure depends on ``cfg.pretrained`` (frozen
    batch norm under ImageNet weights, trainable batch norm from scratch, as torchvision's
    own builders do); ``load_pretrained=False`` builds that structure without reading the
    weights (when a checkpoint will overwrite them anyway).
    """
    from torch import nn
    from torchvision.models.detection import FasterRCNN, KeypointRCNN, MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import mobilenet_backbone, resnet_fpn_backbone
    from torchvision.ops.misc import FrozenBatchNorm2d

    family, arch = BACKBONES[cfg.backbone]
    weights = None
    if cfg.pretrained and load_pretrained:
        from zoo.training.weights import cached_weights

        weights = cached_weights(arch, what=f"pretrained backbone {arch}")
    norm = FrozenBatchNorm2d if cfg.pretrained else nn.BatchNorm2d
    sizes = anchor_sizes(cfg)
    if family == "resnet":
        layers = cfg.trainable_layers if cfg.trainable_layers is not None else (3 if cfg.pretrained else 5)
        backbone = resnet_fpn_backbone(backbone_name=arch, weights=weights, norm_layer=norm, trainable_layers=min(layers, 5))
        anchors = AnchorGenerator(tuple((s,) for s in sizes), ((0.5, 1.0, 2.0),) * len(sizes))
    else:
        layers = cfg.trainable_layers if cfg.trainable_layers is not None else (3 if cfg.pretrained else 6)
        backbone = mobilenet_backbone(
            backbone_name=arch, weights=weights, fpn=True, norm_layer=norm, trainable_layers=min(layers, 6)
        )
        anchors = AnchorGenerator((sizes,) * 3, ((0.5, 1.0, 2.0),) * 3)
    common: dict[str, Any] = dict(
        num_classes=num_classes,
        min_size=cfg.imgsz,
        max_size=cfg.imgsz,
        rpn_anchor_generator=anchors,
        box_score_thresh=cfg.score_threshold,
        box_nms_thresh=cfg.nms_iou,
        box_detections_per_img=cfg.max_detections,
        box_batch_size_per_image=cfg.rois_per_image,
        rpn_pre_nms_top_n_train=2 * cfg.proposals,
        rpn_post_nms_top_n_train=2 * cfg.proposals,
        rpn_pre_nms_top_n_test=cfg.proposals,
        rpn_post_nms_top_n_test=cfg.proposals,
    )
    if kind == "faster":
        return with_sparse_roi_align(FasterRCNN(backbone, **common))
    if kind == "mask":
        return with_sparse_roi_align(MaskRCNN(backbone, **common))
    if kind == "keypoint":
        from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor

        layers = (cfg.keypoint_head_channels,) * cfg.keypoint_head_layers
        head = KeypointRCNNHeads(backbone.out_channels, layers)
        predictor = KeypointRCNNPredictor(layers[-1], num_keypoints)
        model = KeypointRCNN(backbone, keypoint_head=head, keypoint_predictor=predictor, **common)
        return with_sparse_roi_align(model)
    raise ValueError(kind)


def with_sparse_roi_align(model):
    """``model`` with its RoI poolers pooling through one sparse matrix while it trains on a
    CPU (:mod:`.roi_align`: the same output; the backward pass 30x as fast as torchvision's
    serial kernel, which took 44 % of a Faster R-CNN step). No weights change."""
    from zoo.plugins.tv_models.roi_align import SparseMultiScaleRoIAlign

    for name in ("box_roi_pool", "mask_roi_pool", "keypoint_roi_pool"):
        pool = getattr(model.roi_heads, name, None)
        if pool is not None:
            setattr(model.roi_heads, name, SparseMultiScaleRoIAlign.like(pool))
    return model


# ----------------------------------------------------------------------------- data


class DetectionSamples(DecodedOnce):
    """``record -> (image tensor, target dict)`` for torchvision's detection models.

    A picklable callable (it runs in DataLoader workers). ``decode`` makes the image at its
    training size and the targets in its pixels (once per run, :meth:`decode_once`);
    ``sample`` adds the random flip and makes the tensors. Ignored instances are left out:
    torchvision has no notion of an ignored region, and training on them as objects or as
    background would both be wrong.
    """

    cache_name = "rcnn"

    def __init__(self, kind: str, imgsz: int, hflip: float = 0.0, num_keypoints: int = 0, flip_idx=None):
        self.kind = kind
        self.imgsz = imgsz
        self.hflip = hflip
        self.num_keypoints = num_keypoints
        self.flip_idx = flip_idx

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, "imgsz": self.imgsz, "num_keypoints": self.num_keypoints}

    def decode(self, record: ImageRecord) -> tuple:
        """``(image uint8 (h, w, 3), boxes float32 (n, 4), labels int64 (n,)[, masks uint8
        (n, h, w)][, keypoints float32 (n, k, 3)])`` at the training size."""
        import numpy as np

        image, sx, sy = shrunk_rgb(record, self.imgsz)
        h, w = image.shape[:2]
        insts = [i for i in record.instances if not i.ignore and i.category >= 0]
        boxes = np.array([_box_on(inst.bbox, sx, sy, w, h) for inst in insts], dtype=np.float32).reshape(-1, 4)
        arrays = [image, boxes, np.array([i.category + 1 for i in insts], dtype=np.int64)]
        if self.kind == "mask":
            arrays.append(np.stack([_scaled_mask(i, record, w, h) for i in insts]) if insts
                          else np.zeros((0, h, w), dtype=np.uint8))
        if self.kind == "keypoint":
            kps = np.zeros((len(insts), self.num_keypoints, 3), dtype=np.float32)
            for k, inst in enumerate(insts):
                for j, (x, y, v) in enumerate((inst.keypoints or [])[: self.num_keypoints]):
                    if v > 0:
                        kps[k, j] = (x * sx, y * sy, 1.0)
            arrays.append(kps)
        return tuple(arrays)

    def sample(self, arrays: tuple):
        import numpy as np
        import torch

        # copies: a cache on disk hands out read-only views of its file
        image = torch.from_numpy(np.array(arrays[0])).permute(2, 0, 1).float().div_(255.0)
        w = image.shape[-1]
        target: dict[str, Any] = {"boxes": torch.from_numpy(np.array(arrays[1])),
                                  "labels": torch.from_numpy(np.array(arrays[2]))}
        extra = iter(arrays[3:])
        if self.kind == "mask":
            target["masks"] = torch.from_numpy(np.array(next(extra)))
        if self.kind == "keypoint":
            target["keypoints"] = torch.from_numpy(np.array(next(extra)))
        if self.hflip > 0 and random.random() < self.hflip:
            image, target = _hflip(image, target, w, self.flip_idx)
        return image, target


def _box_on(bbox, sx: float, sy: float, w: int, h: int) -> tuple[float, float, float, float]:
    """An xyxy box in original pixels -> in the ``w`` x ``h`` tensor's, clipped to it; at
    least 1 px wide and high (torchvision rejects empty boxes: a point-like object keeps one)."""
    x0, y0, x1, y1 = bbox
    x0, x1 = sorted((min(max(x0 * sx, 0.0), w), min(max(x1 * sx, 0.0), w)))
    y0, y1 = sorted((min(max(y0 * sy, 0.0), h), min(max(y1 * sy, 0.0), h)))
    if x1 - x0 < 1:
        c = min(max((x0 + x1) / 2, 0.5), w - 0.5)
        x0, x1 = c - 0.5, c + 0.5
    if y1 - y0 < 1:
        c = min(max((y0 + y1) / 2, 0.5), h - 0.5)
        y0, y1 = c - 0.5, c + 0.5
    return x0, y0, x1, y1


def shrunk_rgb(record: ImageRecord, imgsz: int):
    """``(h, w, 3)`` uint8 with the longer side at most ``imgsz`` (never enlarged), and the
    scale factors (x, y) from original pixels to these."""
    import numpy as np
    from PIL import Image

    img = record.open()
    W, H = img.size
    s = min(1.0, imgsz / max(W, H))
    if s < 1.0:
        img = img.resize((max(1, round(W * s)), max(1, round(H * s))), Image.BILINEAR)
    w, h = img.size
    return np.asarray(img), w / W, h / H


def load_image(record: ImageRecord, imgsz: int):
    """``(3, h, w)`` float tensor in [0, 1] with the longer side at most ``imgsz``, and the
    scale factors (x, y) from original pixels to tensor pixels."""
    import numpy as np
    import torch

    rgb, sx, sy = shrunk_rgb(record, imgsz)
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div_(255.0), sx, sy


def _scaled_mask(inst, record: ImageRecord, w: int, h: int):
    """The instance's mask (zoo's one rasteriser) at the tensor's size, as uint8."""
    import numpy as np
    from PIL import Image

    from zoo.data.raster import instance_mask

    m = instance_mask(inst, record.height, record.width)
    if m.shape != (h, w):
        m = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((w, h), Image.BILINEAR)) > 127
    return m.astype(np.uint8)


def _hflip(image, target, w: int, flip_idx):
    image = image.flip(-1)
    boxes = target["boxes"].clone()
    boxes[:, 0], boxes[:, 2] = w - target["boxes"][:, 2], w - target["boxes"][:, 0]
    target = {**target, "boxes": boxes}
    if "masks" in target:
        target["masks"] = target["masks"].flip(-1)
    if "keypoints" in target:
        kps = target["keypoints"].clone()
        kps[..., 0] = w - kps[..., 0]
        kps[..., 0][kps[..., 2] == 0] = 0
        if flip_idx is not None:
            kps = kps[:, flip_idx]
        target["keypoints"] = kps
    return image, target


# ----------------------------------------------------------------------------- backend


class RCNNBackend(Backend):
    """The three R-CNN backends, one class: the spec's ``head`` option names the model
    (``faster``, ``mask``, ``keypoint``)."""

    Config = RCNNConfig

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.option("head")

    def __init__(self, task: Task, meta: Dataset, config: RCNNConfig, ctx: RunContext):
        super().__init__(task, meta, config, ctx)
        self.model = None
        self.masks = self.kind == "mask" and task.draws_masks  # mask-rcnn on detect: boxes only
        self.num_keypoints = len(self.meta.keypoint_names) if self.kind == "keypoint" else 0
        if self.kind == "keypoint" and not self.num_keypoints:
            raise ZooError(f"{self.name} needs keypoint names in the dataset (labelme points or zoo.yaml)")

    # the model kind actually built: mask-rcnn on plain detection trains no mask head
    def _model_kind(self) -> str:
        return "mask" if self.masks else ("faster" if self.kind == "mask" else self.kind)

    def _build(self, load_pretrained: bool):
        return build_model(
            self._model_kind(), self.config, len(self.meta.categories) + 1, self.num_keypoints, load_pretrained
        )

    def _samples(self, train: bool) -> DetectionSamples:
        hflip = self.config.hflip if train else 0.0
        flip_idx = None
        if self.kind == "keypoint" and hflip > 0:
            flip_idx = flip_permutation(self.meta)
            if flip_idx is None:
                self.ctx.log.info("%s: no left/right keypoint pairs known; training without flips", self.name)
                hflip = 0.0
        kind = self._model_kind()
        return DetectionSamples(kind if kind != "faster" else "box", self.config.imgsz, hflip, self.num_keypoints, flip_idx)

    def fit(self, train: Dataset, selection: Selection) -> dict[str, Any]:
        model = self._build(load_pretrained=True)
        if self.config.weights is not None:
            from zoo.training.weights import load_matching
            from zoo.training import weights_of

            load_matching(model, weights_of(self.config.weights, trust=self.ctx.trust_weights),
                          str(self.config.weights))
        samples = self._samples(train=True)
        samples.decode_once(train.images, cache_folder(self.ctx.work_dir))  # not again every epoch
        result = fit_backend(self, model, MappedDataset(train.images, samples), selection, collate=collate_lists,
                             extra=self._extra(), bf16=self.kind in BF16_HEADS, description=self.name)
        return result.summary()

    def _extra(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self._model_kind(),
            "categories": list(self.meta.categories),
            "keypoint_names": list(self.meta.keypoint_names),
            "config": dump_config(self.config),
        }

    @classmethod
    def load(cls, task: Task, meta: Dataset, config: RCNNConfig, ctx: RunContext) -> RCNNBackend:
        self = cls(task, meta, config, ctx)
        model = self._build(load_pretrained=False)
        restore(model, ctx.checkpoint_dir, {"categories": list(self.meta.categories)}, ledger=ctx.ledger)
        self.model = model
        return self

    def predict(self, images: Sequence[ImageRecord]) -> Iterator[InstancePredictions]:
        import torch

        if self.model is None:
            raise ZooError(f"{self.name}: no model; fit() or load() first ({self.ctx.checkpoint_dir / LAST})")
        model = self.model.to(self.ctx.device).eval()
        for chunk in predict_batches(images, self.config.batch, f"{self.name} predict"):
            loaded = [load_image(r, self.config.imgsz) for r in chunk]
            with torch.no_grad():
                outs = model([t.to(self.ctx.device) for t, _, _ in loaded])
            for record, (_, sx, sy), out in zip(chunk, loaded, outs):
                yield self._translate(record, {k: v.cpu() for k, v in out.items()}, sx, sy)

    def _translate(self, record: ImageRecord, out: dict, sx: float, sy: float) -> InstancePredictions:
        """torchvision's output for one image -> canonical detections in original pixels."""
        import torch

        W, H = record.width, record.height
        boxes = out["boxes"].double()
        boxes[:, 0::2] = (boxes[:, 0::2] / sx).clamp(0, W)
        boxes[:, 1::2] = (boxes[:, 1::2] / sy).clamp(0, H)
        dets = []
        for k in range(len(boxes)):
            det = Detection(
                category=int(out["labels"][k]) - 1,
                score=float(out["scores"][k]),
                bbox=tuple(float(v) for v in boxes[k]),
            )
            if self.masks:
                det.mask = self._mask_rle(out["masks"][k], H, W)
            if self.kind == "keypoint":
                kp = out["keypoints"][k]
                conf = torch.sigmoid(out["keypoints_scores"][k])
                det.keypoints = [
                    (float(kp[j, 0]) / sx, float(kp[j, 1]) / sy, float(conf[j])) for j in range(kp.shape[0])
                ]
            dets.append(det)
        return InstancePredictions(image_id=record.id, detections=dets)

    def _mask_rle(self, prob, H: int, W: int) -> dict:
        """A ``(1, h, w)`` probability map -> RLE at the original size, one mask at a time so
        large images never hold a hundred full-size float masks at once."""
        import torch.nn.functional as F

        from zoo.data.raster import mask_to_rle

        full = F.interpolate(prob[None].float(), size=(H, W), mode="bilinear", align_corners=False)[0, 0]
        return mask_to_rle((full > self.config.mask_threshold).numpy())

    def export_onnx(self, out_dir, *, opset, dynamic, sample) -> dict[str, Any]:
        from zoo.plugins.tv_models.export import export_rcnn

        images = [load_image(r, self.config.imgsz)[0] for r in sample[:2]]
        if not images:
            import torch

            images = [torch.zeros(3, self.config.imgsz, self.config.imgsz)]
        return export_rcnn(self, out_dir, opset=opset, dynamic=dynamic, images=images)

    @classmethod
    def load_onnx(cls, task: Task, meta: Dataset, config: RCNNConfig, ctx: RunContext, onnx_file) -> RCNNBackend:
        from zoo.plugins.tv_models.export import RCNN_OUTPUTS, OnnxRCNN

        self = cls(task, meta, config, ctx)
        self.model = OnnxRCNN(onnx_file, ctx.device, RCNN_OUTPUTS[self._model_kind()])
        return self

    def num_parameters(self) -> int | None:
        if self.model is None:
            return None
        return sum(p.numel() for p in self.model.parameters())

    def versions(self) -> dict[str, str]:
        import torch
        import torchvision

        return {"torch": torch.__version__, "torchvision": torchvision.__version__}
