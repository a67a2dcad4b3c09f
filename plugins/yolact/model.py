"""The YOLACT network (paper figure 2): ResNet + FPN (P3-P7), ProtoNet on P3, one
prediction head shared by all levels, the auxiliary semantic-segmentation head, and for
YOLACT++ the deformable backbone and the mask re-scoring network.

Every module returns plain tensors; anchors, losses and post-processing live elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.plugins.yolact.boxes import level_shapes, make_anchors

#: torchvision ResNets zoo builds on; a BasicBlock stage ends with 512 channels, a Bottleneck one with 2048
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")


class ModulatedDeformConv(nn.Module):
    """DCNv2 (Zhu et al. 2019), the conv YOLACT++ puts in the backbone (section 6.1):
    ``y(p) = sum_k w_k x(p + p_k + dp_k) dm_k``, where the offsets ``dp_k`` and the modulation
    ``dm_k`` in (0, 1) are predicted from the input by a plain conv. It starts as the conv it
    replaces: zero offsets (modulation sigmoid(0) = 0.5, as in DCNv2)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        from torchvision.ops import DeformConv2d

        k = conv.kernel_size[0] * conv.kernel_size[1]
        self.conv = DeformConv2d(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
            groups=conv.groups, bias=conv.bias is not None,
        )
        with torch.no_grad():
            self.conv.weight.copy_(conv.weight)
        self.offset_mask = nn.Conv2d(conv.in_channels, 3 * k, conv.kernel_size, conv.stride, conv.padding, conv.dilation)
        nn.init.zeros_(self.offset_mask.weight)
        nn.init.zeros_(self.offset_mask.bias)

    def forward(self, x):
        dy_dx_1, dy_dx_2, modulation = self.offset_mask(x).chunk(3, dim=1)
        return self.conv(x, torch.cat([dy_dx_1, dy_dx_2], 1), torch.sigmoid(modulation))


def add_deformable_convs(resnet, interval: int) -> int:
    """YOLACT++'s backbone: the 3x3 conv of every ``interval``-th block of C3-C5 becomes
    deformable (interval 3 on ResNet-101 gives the paper's 11 deformable layers). Returns
    how many were replaced."""
    replaced = 0
    for stage in (resnet.layer2, resnet.layer3, resnet.layer4):
        for i, block in enumerate(stage):
            if i % interval == 0:
                block.conv2 = ModulatedDeformConv(block.conv2)
                replaced += 1
    return replaced


class Backbone(nn.Module):
    """ResNet C3-C5 -> FPN P3-P5, and P6, P7 by stride-2 convs on P5 (paper section 4)."""

    def __init__(self, depth: str, channels: int = 256, dcn_interval: int = 0, weights=None):
        super().__init__()
        import torchvision
        from torchvision.models._utils import IntermediateLayerGetter
        from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelP6P7

        resnet = getattr(torchvision.models, depth)(weights=weights)
        if dcn_interval > 0:
            add_deformable_convs(resnet, dcn_interval)
        expansion = resnet.layer4[0].expansion
        self.body = IntermediateLayerGetter(resnet, {"layer2": "c3", "layer3": "c4", "layer4": "c5"})
        self.fpn = FeaturePyramidNetwork(
            [128 * expansion, 256 * expansion, 512 * expansion], channels, extra_blocks=LastLevelP6P7(channels, channels)
        )

    def forward(self, x) -> list:
        return list(self.fpn(self.body(x)).values())  # P3, P4, P5, P6, P7


class ProtoNet(nn.Module):
    """Figure 3: three 3x3 convs on P3, x2 upsampling, a 3x3 conv, then a 1x1 conv to k
    prototypes. The final ReLU keeps prototypes unbounded above but non-negative."""

    def __init__(self, channels: int, k: int):
        super().__init__()
        conv = lambda: [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]  # noqa: E731
        self.head = nn.Sequential(*conv(), *conv(), *conv())
        self.tail = nn.Sequential(*conv(), nn.Conv2d(channels, k, 1), nn.ReLU(inplace=True))

    def forward(self, p3):
        x = nn.functional.interpolate(self.head(p3), scale_factor=2, mode="bilinear", align_corners=False)
        return self.tail(x)  # (B, k, 2h, 2w)


class PredictionHead(nn.Module):
    """Figure 4: one head shared across P3-P7. A 3x3 conv, then three 3x3 convs giving, per
    anchor, ``c + 1`` class confidences (background first), 4 box offsets and k mask
    coefficients through tanh (coefficients must be able to subtract prototypes)."""

    def __init__(self, channels: int, num_anchors: int, num_classes: int, k: int):
        super().__init__()
        self.num_classes, self.k = num_classes, k
        self.shared = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))
        self.conf = nn.Conv2d(channels, num_anchors * (num_classes + 1), 3, padding=1)
        self.box = nn.Conv2d(channels, num_anchors * 4, 3, padding=1)
        self.coef = nn.Conv2d(channels, num_anchors * k, 3, padding=1)

    @staticmethod
    def _flat(x, per_anchor: int):
        b = x.shape[0]
        return x.permute(0, 2, 3, 1).reshape(b, -1, per_anchor)  # (B, H*W*A, per_anchor)

    def forward(self, p):
        x = self.shared(p)
        return (
            self._flat(self.conf(x), self.num_classes + 1),
            self._flat(self.box(x), 4),
            torch.tanh(self._flat(self.coef(x), self.k)),
        )


class MaskIoUNet(nn.Module):
    """YOLACT++ fast mask re-scoring (section 6.2): a cropped mask (at prototype size) ->
    six convs (stride 2 but the last, ReLU) and a global max pool -> the mask's IoU with
    its object, per class."""

    def __init__(self, num_classes: int):
        super().__init__()
        layers, c_in = [], 1
        for c in (8, 16, 32, 64, 128):
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            c_in = c
        layers += [nn.Conv2d(c_in, num_classes, 1), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers)

    def forward(self, masks):
        return self.net(masks[:, None]).amax(dim=(2, 3))  # (n, classes)


class YolactNet(nn.Module):
    """The whole network. ``forward(images)`` -> a dict of raw outputs:

    ``conf (B, N, c+1)``, ``loc (B, N, 4)``, ``coef (B, N, k)``, ``proto (B, h, w, k)``,
    and in training ``seg (B, c, H3, W3)`` (the semantic head on P3). ``anchors(out)``
    gives the ``(N, 4)`` anchors those outputs refer to.
    """

    def __init__(
        self,
        num_classes: int,
        imgsz: int,
        anchor_sizes: Sequence[float],
        scales: Sequence[float] = (1.0,),
        ratios: Sequence[float] = (1.0, 0.5, 2.0),
        depth: str = "resnet18",
        k: int = 32,
        channels: int = 256,
        dcn_interval: int = 0,
        rescoring: bool = False,
        weights=None,
    ):
        super().__init__()
        self.imgsz = imgsz
        self.scales, self.ratios = tuple(scales), tuple(ratios)
        # a buffer, so a checkpoint carries the sizes chosen from its training data
        self.register_buffer("anchor_sizes", torch.tensor([float(s) for s in anchor_sizes]))
        self.backbone = Backbone(depth, channels, dcn_interval, weights)
        self.protonet = ProtoNet(channels, k)
        self.head = PredictionHead(channels, len(self.scales) * len(self.ratios), num_classes, k)
        self.semantic = nn.Conv2d(channels, num_classes, 1)
        self.maskiou = MaskIoUNet(num_classes) if rescoring else None
        self._anchor_cache: dict = {}

    def forward(self, images) -> dict:
        levels = self.backbone(images)
        parts = [self.head(p) for p in levels]
        out = {
            "conf": torch.cat([c for c, _, _ in parts], 1),
            "loc": torch.cat([b for _, b, _ in parts], 1),
            "coef": torch.cat([m for _, _, m in parts], 1),
            "proto": self.protonet(levels[0]).permute(0, 2, 3, 1),
            "grids": [tuple(p.shape[-2:]) for p in levels],
        }
        if self.training:
            out["seg"] = self.semantic(levels[0])
        return out

    def anchors(self, out: dict):
        key = (tuple(out["grids"]), out["loc"].device, tuple(self.anchor_sizes.tolist()))
        if key not in self._anchor_cache:
            shapes = level_shapes(self.anchor_sizes.tolist(), self.scales, self.ratios)
            self._anchor_cache = {key: make_anchors(out["grids"], shapes, self.imgsz, out["loc"].device)}
        return self._anchor_cache[key]
