"""Dice + cross-entropy over a label map, with 255 ignored by both terms.

Cross-entropy learns every pixel; Dice keeps small structures (platelets, nuclei) from
drowning in background. Both skip ignored pixels (labelme ``__ignore__``, the letterbox
padding), so such a region can hold anything without changing the loss or its gradient.
The Dice term is segmentation-models-pytorch's ``DiceLoss`` (installed with ``zoo[smp]``
and ``zoo[monai]``); torch and smp are imported when a loss is made.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

from zoo.training.dense.geometry import IGNORE

KINDS = ("dice+ce", "ce", "dice")


def import_smp():
    """``segmentation_models_pytorch`` with the Hugging Face hub offline (zoo fetches any
    weights itself, :mod:`zoo.training.fetch`) and timm's deprecation warning silenced."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # already imported by someone else: it read the env then
        constants.HF_HUB_OFFLINE = True
    with warnings.catch_warnings():
        # timm (smp's encoders) decorates a class with torch.jit.interface, which torch 2.9+
        # deprecates: a FutureWarning on every run that nobody running zoo can act on
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.interface` is deprecated", category=FutureWarning)
        import segmentation_models_pytorch as smp

    return smp


class SegmentationLoss:
    """``loss(logits (N, C, H, W), target (N, H, W) int64) -> {"ce": ..., "dice": ...}``."""

    def __init__(self, kind: str = "dice+ce"):
        if kind not in KINDS:
            raise ValueError(f"loss {kind!r}: expected one of {', '.join(KINDS)}")
        self.terms = kind.split("+")  # not substring tests: "ce" is inside "dice"
        self.dice = None
        if "dice" in self.terms:
            self.dice = import_smp().losses.DiceLoss("multiclass", from_logits=True, ignore_index=IGNORE)

    def __call__(self, logits, target) -> dict[str, Any]:
        import torch.nn.functional as F

        parts: dict[str, Any] = {}
        if not bool((target != IGNORE).any()):
            # Nothing to learn here: a zero that still belongs to the graph (cross-entropy
            # would be 0/0 = nan).
            zero = logits.sum() * 0.0
            return {k: zero for k in self.terms}
        if "ce" in self.terms:
            parts["ce"] = F.cross_entropy(logits, target, ignore_index=IGNORE)
        if self.dice is not None:
            parts["dice"] = self.dice(logits, target)
        return parts

    def total(self, logits, target):
        return sum(self(logits, target).values())
