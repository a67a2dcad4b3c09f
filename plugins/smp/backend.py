"""The smp backends: segmentation-models-pytorch's architectures on the dense-network kit.

Everything but the network (letterboxed samples, Dice + CE with 255 ignored, the shared
loop, logits scaled back, ONNX export) is :class:`zoo.training.dense.SegmentationBackend`;
here smp's model is built (:mod:`.models`) and named in the checkpoint (architecture,
encoder, depth, classes), which ``load`` checks before restoring.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from zoo.errors import ZooError
from zoo.plugins.smp.models import build_model, check_encoder, import_smp, min_side_of, stride_of
from zoo.training.dense import SegmentationBackend, SegmentationConfig


class SmpConfig(SegmentationConfig):
    """Settings of every smp backend (the shipped YAML tunes them per architecture).

    ``encoder``: any smp encoder (``resnet18``, ``resnet34``, ``efficientnet-b0``,
    ``mit_b0``, ...) or ``tu-<timm model>``. resnet18 by default: on a CPU it trains about
    twice as fast as resnet34 with plain convolutions that learn well from scratch.
    Encoder weights: none unless ``pretrained: true`` (``imagenet``) or ``encoder_weights``
    names a set; they must already be in the local Hugging Face cache.
    """

    encoder: str = "resnet18"
    encoder_depth: int | None = Field(None, ge=3, le=5)  # None: the architecture's default
    encoder_weights: str | None = None

    @field_validator("encoder")
    @classmethod
    def _known_encoder(cls, name: str) -> str:
        # Checked when the config is resolved, so a typo fails before a run folder exists.
        try:
            check_encoder(name)
        except ZooError as e:
            raise ValueError(str(e)) from None
        return name


class SmpBackend(SegmentationBackend):
    """A segmentation-models-pytorch architecture for semantic-seg: every smp backend name,
    the smp class to build in its spec's ``architecture`` option (``Unet``, ``FPN``, ...)."""

    Config: ClassVar[type[SmpConfig]] = SmpConfig

    @property
    def architecture(self) -> str:  # type: ignore[override]
        return self.option("architecture")

    def _canvas(self) -> tuple[int, int]:
        return stride_of(self.architecture, self.config.encoder_depth), min_side_of(self.architecture)

    def _title(self) -> str:
        return f"{self.architecture} ({self.config.encoder})"

    def _build(self, *, pretrained: bool):
        c = self.config
        return build_model(
            self.architecture,
            encoder=c.encoder,
            classes=len(self.classes),
            encoder_depth=c.encoder_depth,
            pretrained=pretrained and c.pretrained,
            encoder_weights=c.encoder_weights if pretrained else None,
            model_args=c.model_args,
        )

    def _identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be loaded into this backend."""
        c = self.config
        return {
            "architecture": self.architecture,
            "encoder": c.encoder,
            "encoder_depth": c.encoder_depth,
            "classes": list(self.classes),
        }

    def versions(self) -> dict[str, str]:
        import timm
        import torch

        return {"segmentation_models_pytorch": import_smp().__version__, "timm": timm.__version__,
                "torch": torch.__version__}
