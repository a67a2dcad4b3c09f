"""MONAI networks as zoo backends: each class builds one network; everything else (data,
loss, training on :func:`zoo.training.fit`, prediction) is the dense-network kit,
:class:`zoo.training.dense.SegmentationBackend`.

Every network is 2-D, 3 input channels (RGB, normalised as smp does), one output channel
per semantic class (background first). ``width`` sets the first stage's channels (each
network's own default when unset); ``model_args`` reaches the MONAI constructor as it is.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from zoo.errors import ZooError
from zoo.training.dense import SegmentationBackend, SegmentationConfig

#: nnU-Net's planning rule (``get_pool_and_conv_props``): keep halving an axis while the
#: feature map stays at least this many pixels on that axis; channels double per stage from
#: 32 up to 512 in 2-D.
NNUNET_MIN_EDGE = 4
NNUNET_BASE_FEATURES = 32
NNUNET_MAX_FEATURES_2D = 512


class MonaiConfig(SegmentationConfig):
    """Settings of every MONAI network backend (the shipped YAML tunes them per network)."""

    width: int | None = Field(None, ge=1)  # first stage's channels; None: the network's default


class MonaiBackend(SegmentationBackend):
    """A MONAI network on the shared letterboxed semantic-seg translator."""

    Config: ClassVar[type[MonaiConfig]] = MonaiConfig
    #: MONAI's medical networks take every level of a 12-bit scan, not 256 (dense.samples.network_pixels)
    deep_pixels: ClassVar[bool] = True
    #: the first stage's channels when ``width`` is not set
    default_width: ClassVar[int] = 16
    #: how many times the network halves its input (the canvas is a multiple of 2 ** this)
    downsamplings: ClassVar[int] = 4
    #: the smallest bottleneck side the network trains with (instance norm needs 2 x 2)
    min_bottleneck: ClassVar[int] = 1

    @property
    def width(self) -> int:
        return self.config.width or self.default_width

    def _canvas(self) -> tuple[int, int]:
        stride = 2**self.downsamplings
        return stride, stride * self.min_bottleneck

    def _identity(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "width": self.width, "classes": list(self.classes)}

    def _build(self, *, pretrained: bool):
        import monai.networks.nets as nets

        if pretrained and self.config.pretrained:
            raise ZooError(f"{self.architecture}: MONAI ships no pretrained 2-D weights; train from scratch "
                           "(pretrained: false) or start from a file (weights: FILE)")
        kwargs = {**self._network_args(), **self.config.model_args}
        try:
            return getattr(nets, self.architecture)(**kwargs)
        except (TypeError, ValueError, AssertionError) as e:
            raise ZooError(f"{self.architecture}: {e}") from None

    def _network_args(self) -> dict[str, Any]:
        raise NotImplementedError

    def _title(self) -> str:
        return f"{self.architecture} (MONAI, width {self.width})"

    def versions(self) -> dict[str, str]:
        import monai
        import torch

        return {"monai": monai.__version__, "torch": torch.__version__}


class SegResNet(MonaiBackend):
    architecture = "SegResNet"
    downsamplings = 3  # blocks_down=(1, 2, 2, 4): three stride-2 convolutions

    def _network_args(self):
        return {"spatial_dims": 2, "in_channels": 3, "out_channels": len(self.classes), "init_filters": self.width}


class SwinUNETR(MonaiBackend):
    architecture = "SwinUNETR"
    default_width = 24  # MONAI's feature_size; must be a multiple of 12 (the heads)
    downsamplings = 5  # 2x2 patches, then four patch mergings
    min_bottleneck = 2  # its instance-normed bottleneck cannot train on 1 x 1: canvas >= 64

    def _network_args(self):
        if self.width % 12:
            raise ZooError(f"swin-unetr: width (feature_size) {self.width} must be a multiple of 12")
        return {"spatial_dims": 2, "in_channels": 3, "out_channels": len(self.classes), "feature_size": self.width}


class AttentionUnet(MonaiBackend):
    architecture = "AttentionUnet"
    downsamplings = 4

    def _network_args(self):
        channels = tuple(self.width * 2**k for k in range(self.downsamplings + 1))
        return {"spatial_dims": 2, "in_channels": 3, "out_channels": len(self.classes),
                "channels": channels, "strides": (2,) * self.downsamplings}


def nnunet_topology(side: int) -> tuple[list[int], list[int]]:
    """``(kernel sizes, strides)`` of a 2-D U-Net for a square ``side`` x ``side`` input,
    planned as nnU-Net plans its 2d configuration for isotropic pixels: 3x3 kernels at every
    stage, the first at stride 1, then stride 2 for as long as the halved feature map keeps
    at least :data:`NNUNET_MIN_EDGE` pixels a side."""
    pools = 0
    size = float(side)
    while size / 2 >= NNUNET_MIN_EDGE:
        size /= 2
        pools += 1
    return [3] * (pools + 1), [1] + [2] * pools


class DynUNet(MonaiBackend):
    architecture = "DynUNet"
    default_width = NNUNET_BASE_FEATURES

    def __init__(self, task, meta, config, ctx):
        self.kernels, self.strides = nnunet_topology(config.imgsz)
        super().__init__(task, meta, config, ctx)

    @property
    def downsamplings(self) -> int:  # type: ignore[override]
        return len(self.strides) - 1

    def _identity(self):
        return {**super()._identity(), "kernel_size": self.kernels, "strides": self.strides}

    def _network_args(self):
        filters = [min(self.width * 2**k, NNUNET_MAX_FEATURES_2D) for k in range(len(self.strides))]
        return {"spatial_dims": 2, "in_channels": 3, "out_channels": len(self.classes),
                "kernel_size": self.kernels, "strides": self.strides,
                "upsample_kernel_size": self.strides[1:], "filters": filters}

